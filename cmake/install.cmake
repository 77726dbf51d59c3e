# Installs the libraries, their headers and a CMake package so that, after `cmake --install`,
# another project can say find_package(autograd) and link autograd::autograd / autograd::nn.
include(CMakePackageConfigHelpers)

install(TARGETS autograd EXPORT autogradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET autograd_nn)
  install(TARGETS autograd_nn EXPORT autogradTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/nn/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nn
    FILES_MATCHING PATTERN "*.h")
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/autograd/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/autograd
  FILES_MATCHING PATTERN "*.h" PATTERN "detail" EXCLUDE PATTERN "ops" EXCLUDE)

install(EXPORT autogradTargets NAMESPACE autograd:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/autograd)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/autogradConfig.cmake.in
  ${PROJECT_BINARY_DIR}/autogradConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/autograd)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/autogradConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/autogradConfig.cmake ${PROJECT_BINARY_DIR}/autogradConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/autograd)
