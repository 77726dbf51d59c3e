# autograd_project_options(target): the project's own compile options, for its own targets only:
# warnings on, and source paths relative to the repository in __FILE__ and std::source_location
# (so diagnostics say "examples/custom_op.cpp:42" wherever the checkout lives).
function(autograd_project_options target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic
      -fmacro-prefix-map=${PROJECT_SOURCE_DIR}/=)
  endif()
endfunction()
