// Reading and writing safetensors files (POSIX I/O: the atomic save needs fsync and rename), and
// the Module helpers built on them.
#include "nn/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace nn {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian: this platform needs a byte swap");

CheckpointError::CheckpointError(const std::filesystem::path& path, const std::string& message)
    : std::runtime_error(fmt::format("checkpoint '{}': {}", path.string(), message)), path_(path) {}

CheckpointError::CheckpointError(const std::filesystem::path& path, uint64_t offset,
                                 const std::string& message)
    : std::runtime_error(
          fmt::format("checkpoint '{}', at byte {}: {}", path.string(), offset, message)),
      path_(path),
      offset_(offset) {}

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kLengthBytes = 8;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Python library's limit
constexpr int kMaxHeaderDepth = 8;                 // a valid header needs 3
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

const char* safetensors_dtype(ag::DType dtype) {
  return dtype == ag::DType::Float64 ? "F64" : "F32";
}

uint64_t item_size(ag::DType dtype) {
  return dtype == ag::DType::Float64 ? 8 : 4;
}

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

/// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  /// Gives up ownership: the caller closes the descriptor.
  int release() { return std::exchange(fd_, -1); }
  /// Closes now; returns 0 or the errno (close can be the first to report a full disk).
  int close() {
    if (fd_ < 0) return 0;
    const int result = ::close(fd_);
    fd_ = -1;
    return result == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

/// Writes all of `bytes`; returns 0 or the errno.
int write_all(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const std::size_t chunk = std::min<std::size_t>(bytes.size(), std::size_t{1} << 30);
    const ssize_t written = ::write(fd, bytes.data(), chunk);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (written == 0) return EIO;
    bytes = bytes.subspan(static_cast<std::size_t>(written));
  }
  return 0;
}

/// A temporary file next to `target`, gone again unless commit() renamed it onto `target`.
///
/// Where the filesystem allows, the file has no name while it is written (O_TMPFILE): a process
/// killed in the middle of a save (SIGKILL, or Ctrl-C without a handler) leaves nothing behind.
/// commit() links it under a temporary name and renames that onto `target`; only a kill between
/// those two calls leaves a (complete) temporary file. Elsewhere (filesystems without O_TMPFILE,
/// no /proc to link it through) the file is named from the start, as `.<target>.<pid>-<n>.tmp`.
/// Once a security policy has refused the link, the save at hand copies its unnamed file into a
/// named one, and the process's later saves name theirs from the start.
class TempFile {
 public:
  TempFile(const fs::path& target, const char* op)
      : target_(target),
        dir_(target.has_parent_path() ? target.parent_path() : fs::path(".")),
        op_(op) {
#ifdef O_TMPFILE
    if (!link_refused.load(std::memory_order_relaxed) &&
        ::faccessat(AT_FDCWD, "/proc/self/fd", X_OK, AT_EACCESS) == 0) {
      const int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
      if (fd >= 0) {
        fd_.emplace(fd);
        return;
      }
    }
#endif
    fd_.emplace(create_named());
  }
  ~TempFile() {
    if (!committed_) {
      fd_->close();
      if (!path_.empty()) ::unlink(path_.c_str());
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(std::span<const std::byte> bytes) {
    if (const int err = write_all(fd_->get(), bytes)) fail(err, "write");
  }

  /// fsync, name the file if it has no name yet, close, rename onto the target, then make the
  /// rename itself durable.
  void commit() {
    if (::fsync(fd_->get()) != 0) fail(errno, "flush (fsync)");
    if (path_.empty()) link_unnamed();
    if (const int err = fd_->close()) fail(err, "close");
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      fail(errno, "rename the temporary file onto");
    committed_ = true;
    // The new file is in place whatever happens now, so failing here would only mislead.
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  static inline std::atomic<bool> link_refused{false};

  fs::path next_name() const {
    static std::atomic<uint64_t> counter{0};
    return dir_ / fmt::format(".{}.{}-{}.tmp", target_.filename().string(), ::getpid(),
                              counter.fetch_add(1));
  }

  /// Creates the file `.<target>.<pid>-<n>.tmp` (sets path_) and returns its descriptor.
  int create_named() {
    for (int attempt = 0;; ++attempt) {
      path_ = next_name();
      // 0666 before the umask, like any newly created file (mkstemp would force 0600).
      const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) return fd;
      const int err = errno;
      if (err != EEXIST || attempt >= 100) {
        const fs::path tried = std::exchange(path_, {});  // nothing to remove
        throw_errno(err, fmt::format("{}: cannot create the temporary file '{}' for '{}'", op_,
                                     tried.string(), target_.string()));
      }
    }
  }

  /// Gives the unnamed file a temporary name (linkat through /proc: AT_EMPTY_PATH would need
  /// CAP_DAC_READ_SEARCH).
  void link_unnamed() {
    const std::string self = fmt::format("/proc/self/fd/{}", fd_->get());
    for (int attempt = 0;; ++attempt) {
      fs::path name = next_name();
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) {
        path_ = std::move(name);
        return;
      }
      const int err = errno;
      if (err == EEXIST && attempt < 100) continue;
      if (err == EEXIST || err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS)
        fail(err, "name the temporary file for");
      // Refused (a security policy may deny link(2) alone, /proc may be a stand-in): copy.
      link_refused.store(true, std::memory_order_relaxed);
      copy_into_named();
      return;
    }
  }

  /// Copies the unnamed file into a new named one, which replaces it.
  void copy_into_named() {
    const Fd unnamed(fd_->release());
    fd_.emplace(create_named());
    std::vector<std::byte> buffer(std::size_t{1} << 20);
    for (off_t offset = 0;;) {
      const ssize_t n = ::pread(unnamed.get(), buffer.data(), buffer.size(), offset);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(errno, "copy the unnamed temporary file for");
      if (n == 0) break;
      write(std::span(buffer.data(), static_cast<std::size_t>(n)));
      offset += n;
    }
    if (::fsync(fd_->get()) != 0) fail(errno, "flush (fsync)");
  }

  [[noreturn]] void fail(int err, const char* step) const {
    const std::string temporary = path_.empty()
                                      ? fmt::format("unnamed temporary file in '{}'", dir_.string())
                                      : fmt::format("temporary file '{}'", path_.string());
    throw_errno(err,
                fmt::format("{}: cannot {} '{}' ({})", op_, step, target_.string(), temporary));
  }

  fs::path target_;
  fs::path dir_;
  const char* op_;
  fs::path path_;  // empty while the file has no name
  std::optional<Fd> fd_;
  bool committed_ = false;
};

/// Reads exactly `size` bytes at `offset`; a short read means the file shrank under us.
void read_at(int fd, const fs::path& path, void* out, uint64_t size, uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(size, 1 << 30));
    const ssize_t got = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno(errno, fmt::format("load_safetensors: cannot read '{}' at byte {}", path.string(),
                                     offset));
    }
    if (got == 0)
      throw CheckpointError(path, offset, "unexpected end of file (did it shrink while loading?)");
    p += got;
    size -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

/// `value` as JSON, for a message: at most 100 characters.
std::string brief(const json& value) {
  std::string text = value.dump();
  if (text.size() > 100) text = text.substr(0, 97) + "...";
  return text;
}

/// One header entry, checked on its own (not yet against the others).
struct Entry {
  std::string name;
  ag::DType dtype;
  ag::Shape shape;
  uint64_t begin;
  uint64_t end;
};

Entry parse_entry(const fs::path& path, const std::string& name, const json& info) {
  auto bad = [&](const std::string& message) {
    return CheckpointError(path, fmt::format("header entry '{}': {}", name, message));
  };
  // save_safetensors refuses an empty name, so load does too: what loads can be saved again.
  if (name.empty()) throw bad("a tensor name must not be empty");
  if (!info.is_object())
    throw bad(fmt::format("expected an object with dtype, shape and data_offsets, found {}",
                          brief(info)));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) throw bad(fmt::format("missing \"{}\"", key));

  Entry entry{name, ag::DType::Float32, {}, 0, 0};
  const json& dtype = info.at("dtype");
  if (dtype == "F64") {
    entry.dtype = ag::DType::Float64;
  } else if (dtype != "F32") {
    throw bad(fmt::format("dtype {} is not supported (only F32 and F64 are)", brief(dtype)));
  }
  const char* dtype_name = safetensors_dtype(entry.dtype);

  const json& shape = info.at("shape");
  const bool shape_ok =
      shape.is_array() && std::all_of(shape.begin(), shape.end(), [](auto& d) {
        return d.is_number_unsigned() &&
               d.template get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max());
      });
  if (!shape_ok)
    throw bad(
        fmt::format("shape must be an array of non-negative integers, found {}", brief(shape)));
  uint64_t bytes = item_size(entry.dtype);
  for (const json& d : shape) {
    const uint64_t extent = d.get<uint64_t>();
    if (extent != 0 && bytes > kMaxU64 / extent)
      throw bad(fmt::format("shape {} of {} overflows 64 bits of bytes", shape.dump(), dtype_name));
    bytes *= extent;
    entry.shape.push_back(static_cast<int64_t>(extent));
  }

  const json& offsets = info.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw bad(fmt::format("data_offsets must be [begin, end], non-negative integers, found {}",
                          brief(offsets)));
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.end < entry.begin)
    throw bad(fmt::format("data_offsets {} end before they begin", offsets.dump()));
  if (entry.end - entry.begin != bytes)
    throw bad(fmt::format("shape {} of {} needs {} bytes, but data_offsets {} span {}",
                          shape.dump(), dtype_name, bytes, offsets.dump(),
                          entry.end - entry.begin));
  return entry;
}

std::map<std::string, std::string> parse_metadata(const fs::path& path, const json& metadata) {
  auto bad = [&] {
    return CheckpointError(
        path,
        fmt::format("\"__metadata__\" must map strings to strings, found {}", brief(metadata)));
  };
  if (!metadata.is_object()) throw bad();
  std::map<std::string, std::string> out;
  for (auto it = metadata.begin(); it != metadata.end(); ++it) {
    if (!it.value().is_string()) throw bad();
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

/// "8 + n + end" as a decimal string, even when it does not fit in 64 bits.
std::string file_size_for(uint64_t header_bytes, uint64_t data_end) {
  const uint64_t prefix = kLengthBytes + header_bytes;
  if (data_end > kMaxU64 - prefix) return "more than 2^64";
  return std::to_string(prefix + data_end);
}

std::string names_of(const NamedTensors& tensors) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : tensors) names.push_back("'" + name + "'");
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

// ---- saving ----

void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  if (!path.has_filename())
    throw std::invalid_argument("save_safetensors: '" + path.string() + "' names no file");
  std::vector<const std::pair<std::string, ag::Tensor>*> order;
  for (const auto& entry : tensors) {
    if (entry.first.empty())
      throw std::invalid_argument("save_safetensors: a tensor has an empty name");
    if (entry.first == "__metadata__")
      throw std::invalid_argument("save_safetensors: \"__metadata__\" is reserved, not a name");
    if (!entry.second.defined())
      throw std::invalid_argument("save_safetensors: tensor '" + entry.first + "' is undefined");
    order.push_back(&entry);
  }
  // The Python library's layout: descending item size, then name, so each tensor is aligned.
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
    const uint64_t size_a = item_size(a->second.dtype()), size_b = item_size(b->second.dtype());
    return size_a != size_b ? size_a > size_b : a->first < b->first;
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* entry : order) {
    const uint64_t bytes =
        static_cast<uint64_t>(entry->second.numel()) * item_size(entry->second.dtype());
    json info = json::object();
    info["dtype"] = safetensors_dtype(entry->second.dtype());
    info["shape"] = entry->second.shape();
    info["data_offsets"] = json::array({offset, offset + bytes});
    if (header.contains(entry->first))
      throw std::invalid_argument("save_safetensors: two tensors are named '" + entry->first + "'");
    header[entry->first] = std::move(info);
    offset += bytes;
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw std::invalid_argument(
        fmt::format("save_safetensors: names and metadata must be valid UTF-8: {}", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();  // little-endian, like the data (see the static_assert)

  TempFile file(path, "save_safetensors");
  file.write(std::as_bytes(std::span(&length, 1)));
  file.write(std::as_bytes(std::span(text)));
  for (const auto* entry : order) {
    const ag::Tensor& t = entry->second;
    const auto n = static_cast<std::size_t>(t.numel());
    if (t.dtype() == ag::DType::Float64)
      file.write(std::as_bytes(std::span(t.data<double>(), n)));
    else
      file.write(std::as_bytes(std::span(t.data<float>(), n)));
  }
  file.commit();
}

void write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  TempFile file(path, "write_file_atomically");
  file.write(std::as_bytes(std::span(contents)));
  file.commit();
}

// ---- loading ----

const ag::Tensor& Safetensors::at(const std::string& name) const {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return tensor;
  throw std::out_of_range(
      fmt::format("Safetensors::at: no tensor named '{}'; present: {}", name, names_of(tensors)));
}

Safetensors load_safetensors(const fs::path& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0)
    throw_errno(errno, fmt::format("load_safetensors: cannot open '{}'", path.string()));
  struct stat info {};
  if (::fstat(file.get(), &info) != 0)
    throw_errno(errno, fmt::format("load_safetensors: cannot stat '{}'", path.string()));
  if (!S_ISREG(info.st_mode)) throw CheckpointError(path, "not a regular file");
  const auto size = static_cast<uint64_t>(info.st_size);

  // The length prefix, then the header it announces: checked before anything is allocated.
  if (size < kLengthBytes)
    throw CheckpointError(path, 0,
                          fmt::format("the file is {} bytes, shorter than the 8-byte header "
                                      "length that starts every safetensors file (truncated?)",
                                      size));
  uint64_t n = 0;
  read_at(file.get(), path, &n, kLengthBytes, 0);
  if (n > kMaxHeaderBytes)
    throw CheckpointError(
        path, 0, fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxHeaderBytes));
  if (n > size - kLengthBytes)
    throw CheckpointError(path, 0,
                          fmt::format("header length {} needs a file of at least {} bytes, but "
                                      "the file is {} bytes (truncated?)",
                                      n, kLengthBytes + n, size));
  std::string text(n, '\0');
  read_at(file.get(), path, text.data(), n, kLengthBytes);

  // A header needs three levels ({"name": {"shape": [...]}}); deeper nesting is refused while
  // parsing, so nothing recursive (printing a value in a message, say) ever meets a deep one.
  const json::parser_callback_t limit_depth = [&](int depth, json::parse_event_t event, json&) {
    if (depth > kMaxHeaderDepth &&
        (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start))
      throw CheckpointError(
          path, kLengthBytes,
          fmt::format("the header nests arrays or objects more than {} deep", kMaxHeaderDepth));
    return true;
  };
  json header;
  try {
    header = json::parse(text, limit_depth);
  } catch (const json::parse_error& e) {
    throw CheckpointError(path, kLengthBytes + (e.byte > 0 ? e.byte - 1 : 0),
                          fmt::format("the header is not valid JSON: {}", e.what()));
  } catch (const json::exception& e) {  // e.g. a number too large for a double: 1e400
    throw CheckpointError(path, kLengthBytes,
                          fmt::format("the header cannot be read as JSON: {}", e.what()));
  }
  if (!header.is_object())
    throw CheckpointError(path, kLengthBytes,
                          fmt::format("the header must be a JSON object, not a JSON {}: {:.80}",
                                      header.type_name(), header.dump()));

  Safetensors result;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      result.metadata = parse_metadata(path, it.value());
    else
      entries.push_back(parse_entry(path, it.key(), it.value()));
  }

  // The tensors must tile the data section: sorted by offset, each begins where the last ended.
  const uint64_t data_start = kLengthBytes + n;
  const uint64_t data_size = size - data_start;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered)
      throw CheckpointError(
          path, data_start + std::min(e.begin, data_size),
          fmt::format("tensor '{}' (data bytes [{}, {})) overlaps tensor '{}' (data bytes "
                      "[{}, {}))",
                      e.name, e.begin, e.end, previous->name, previous->begin, previous->end));
    if (e.begin > covered)
      throw CheckpointError(
          path, data_start + std::min(covered, data_size),
          fmt::format("data bytes [{}, {}) belong to no tensor (a gap before tensor '{}'); the "
                      "tensors must cover the data section exactly",
                      covered, e.begin, e.name));
    if (e.end > data_size)
      throw CheckpointError(
          path, size,
          fmt::format("tensor '{}' ends at data byte {}, past the end of the data section ({} "
                      "bytes): the header describes a file of {} bytes, but the file is {} "
                      "bytes (truncated, or data_offsets out of range)",
                      e.name, e.end, data_size, file_size_for(n, entries.back().end), size));
    covered = e.end;
    previous = &e;
  }
  if (covered < data_size)
    throw CheckpointError(path, data_start + covered,
                          fmt::format("{} bytes after the last tensor's data belong to no tensor "
                                      "(the header describes a file of {} bytes, the file is {})",
                                      data_size - covered, data_start + covered, size));

  // Every claim is checked: the allocations below add up to the data section's actual size.
  for (const Entry& e : entries) {
    ag::Tensor t = ag::Tensor::empty(e.shape, e.dtype);
    const uint64_t bytes = e.end - e.begin;
    if (bytes > 0) {
      void* out = e.dtype == ag::DType::Float64 ? static_cast<void*>(t.data<double>())
                                                : static_cast<void*>(t.data<float>());
      read_at(file.get(), path, out, bytes, data_start + e.begin);
    }
    result.tensors.emplace_back(e.name, std::move(t));
  }
  std::sort(result.tensors.begin(), result.tensors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return result;
}

// ---- modules ----

void save(const Module& module, const fs::path& path, const NamedTensors& extra,
          const std::map<std::string, std::string>& metadata) {
  NamedTensors all = module.named_parameters();
  all.insert(all.end(), extra.begin(), extra.end());
  save_safetensors(path, all, metadata);
}

Safetensors load(Module& module, const fs::path& path) {
  Safetensors file = load_safetensors(path);
  std::map<std::string, const ag::Tensor*> by_name;
  for (const auto& [name, tensor] : file.tensors) by_name.emplace(name, &tensor);

  // Check every parameter before changing any, so a bad file leaves the module as it was.
  NamedTensors parameters = module.named_parameters();
  std::vector<const ag::Tensor*> sources;
  for (const auto& [name, parameter] : parameters) {
    const auto found = by_name.find(name);
    if (found == by_name.end())
      throw CheckpointError(
          path, fmt::format("parameter '{}' (shape {}) is missing; the file "
                            "holds {}",
                            name, ag::shape_str(parameter.shape()), names_of(file.tensors)));
    if (found->second->shape() != parameter.shape())
      throw CheckpointError(path, fmt::format("parameter '{}': the module expects shape {}, the "
                                              "file has shape {}",
                                              name, ag::shape_str(parameter.shape()),
                                              ag::shape_str(found->second->shape())));
    const ag::Tensor& source = *found->second;
    if (source.dtype() == ag::DType::Float64 && parameter.dtype() == ag::DType::Float32) {
      // Converting would turn a finite value beyond float's range into infinity, silently.
      const double* values = source.data<double>();
      for (int64_t i = 0; i < source.numel(); ++i)
        if (std::isfinite(values[i]) &&
            std::fabs(values[i]) > double(std::numeric_limits<float>::max()))
          throw CheckpointError(
              path, fmt::format("parameter '{}': element {} is {} in the file (F64), beyond the "
                                "range of the module's float32 (largest {})",
                                name, i, values[i], std::numeric_limits<float>::max()));
    }
    sources.push_back(&source);
  }
  ag::NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters.size(); ++i) parameters[i].second.copy_(*sources[i]);
  return file;
}

}  // namespace nn
