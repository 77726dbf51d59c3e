// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), the format
// Python's `safetensors.torch.load_file` / `safetensors.numpy.load_file` read:
//
//   [u64 little-endian n][n bytes of JSON header, space-padded to a multiple of 8][data]
//
// The header maps each tensor name to {"dtype": "F32"|"F64", "shape": [...], "data_offsets":
// [begin, end]} (byte offsets into the data section, which the tensors cover exactly), plus an
// optional "__metadata__" object of strings. As the Python library does, tensors are laid out by
// descending item size, then by name: F64 tensors first, so every tensor's data is aligned to its
// element type in the file.
//
// Saving is atomic (temporary file, fsync, rename). Loading checks every claim the header makes
// against the file before it allocates anything.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "nn/module.h"

namespace nn {

/// A checkpoint file that is not what it should be: what() names the file, the byte offset
/// (where meaningful) and what was expected.
class CheckpointError : public std::runtime_error {
 public:
  CheckpointError(const std::filesystem::path& path, const std::string& message);
  CheckpointError(const std::filesystem::path& path, uint64_t offset, const std::string& message);

  /// The file the error is about.
  const std::filesystem::path& path() const { return path_; }
  /// The byte offset in the file the error is about, when there is one.
  std::optional<uint64_t> offset() const { return offset_; }

 private:
  std::filesystem::path path_;
  std::optional<uint64_t> offset_;
};

/// Writes `contents` to `path` the same atomic way save_safetensors does: `path` is afterwards
/// either the old file or the complete new one; on failure std::system_error names the path and
/// the errno text, and no temporary file is left.
void write_file_atomically(const std::filesystem::path& path, std::string_view contents);

/// Writes tensors (and optional string metadata) to `path` atomically: into a temporary file in
/// the same directory, flushed (fsync), then renamed over `path`. The temporary file has no name
/// until it is complete where the filesystem allows (O_TMPFILE), so a process killed mid-save
/// leaves nothing behind. On any failure the temporary file is removed, a std::system_error naming
/// the path and the errno text (e.g. "No space left on device") is thrown, and an existing file at
/// `path` is left untouched. Names must be unique, non-empty, valid UTF-8 and not "__metadata__"
/// (else std::invalid_argument, before any I/O).
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The contents of a safetensors file.
struct Safetensors {
  /// Every tensor, sorted by name; plain leaves that do not require grad.
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor called `name`; throws std::out_of_range naming it and the names present.
  const ag::Tensor& at(const std::string& name) const;
};

/// Reads a whole file, checking everything: the file is at least 8 bytes; the header length is
/// at most 100 MB and fits in the file; the header is a JSON object nested at most 8 deep (a valid
/// one needs 3); each entry has a non-empty name (as save requires), its dtype is F32 or F64, its
/// shape non-negative integers whose element count times item size equals end - begin
/// (without overflow); the offsets cover the data section exactly, without gaps or overlaps; the
/// file is neither truncated nor followed by extra bytes. Throws CheckpointError on a bad file,
/// std::system_error when it cannot be read.
Safetensors load_safetensors(const std::filesystem::path& path);

/// Saves every named parameter of `module` plus `extra` tensors (e.g. "input_mean",
/// "input_std"); an extra may not reuse a parameter's name.
void save(const Module& module, const std::filesystem::path& path, const NamedTensors& extra = {},
          const std::map<std::string, std::string>& metadata = {});

/// Copies the values in `path` into the module's existing parameters (their storage, so handles
/// held elsewhere, e.g. by an optimizer, stay valid), converting the dtype if needed. Every
/// parameter must be present with the same shape, else CheckpointError (naming the parameter and
/// both shapes) and the module is left unchanged; so is a float64 value too large for a float32
/// parameter (naming the parameter, the element and the value). Infinities and NaNs are copied as
/// they are. Tensors that are not parameters are allowed.
/// Returns the whole file, so the caller can read the extras.
Safetensors load(Module& module, const std::filesystem::path& path);

}  // namespace nn
