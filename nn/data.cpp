// The dataset readers (IDX, CIFAR-10), the CS231n spiral, standardisation and the validation
// split.
//
// The readers go through ByteStream, which reads a plain or a gzip-compressed file front to back
// and counts the (decompressed) bytes, so that every error can say at which byte it happened.
// A body whose size comes from a header is never allocated on the header's word: for a plain
// file the claim is first checked against the bytes the file holds, and read_body() fills
// bounded chunks, so a gzip stream (whose size is unknown until it ends) costs at most one chunk
// more than the data it actually delivers.
#include "nn/data.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <string_view>

#include "autograd/threads.h"

namespace nn {

namespace fs = std::filesystem;

DataError::DataError(const fs::path& file, uint64_t offset, const std::string& problem)
    : std::runtime_error(fmt::format("{}: byte {}: {}", file.string(), offset, problem)),
      file_(file),
      offset_(offset) {}

namespace {

// Bodies are read (and, for gzip, allocated) this many bytes at a time.
constexpr std::size_t kChunk = std::size_t{1} << 20;

// out[i] = in[i] / 255 for n bytes, through a table of the 256 possible values; returns the
// end of out.
float* scale_pixels(const uint8_t* in, std::size_t n, float* out) {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (std::size_t b = 0; b < t.size(); ++b) t[b] = static_cast<float>(b) / 255.0f;
    return t;
  }();
  const float* scale = table.data();
  for (std::size_t i = 0; i < n; ++i) out[i] = scale[in[i]];
  return out + n;
}

uint32_t big_endian(const std::array<uint8_t, 4>& b) {
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
}

// A plain or gzip-compressed file (told apart by the gzip magic bytes, not by the name), read
// front to back.
class ByteStream {
 public:
  explicit ByteStream(fs::path file);

  const fs::path& file() const { return file_; }
  // Bytes read so far: the offset of the next byte in the (decompressed) data.
  uint64_t offset() const { return offset_; }
  bool compressed() const { return gz_ != nullptr; }
  // Bytes left to read, when known: plain files only.
  std::optional<uint64_t> remaining() const;

  // Reads up to n bytes; fewer only at the end of the data.
  std::size_t read_some(uint8_t* out, std::size_t n);
  // Reads exactly n bytes of `what`, or throws DataError at the point where the data ends.
  void read_exact(uint8_t* out, std::size_t n, std::string_view what);
  // Throws DataError if a plain file holds fewer than `bytes` more bytes (no-op for gzip).
  void require(uint64_t bytes, std::string_view what) const;
  // Throws DataError unless the data ends here, right after `what`.
  void expect_end(std::string_view what);
  // The DataError for `expected` bytes of `what` from byte `start` that stop at byte `end`.
  DataError truncated(uint64_t start, uint64_t expected, uint64_t end, std::string_view what) const;

 private:
  struct CloseFile {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  struct CloseGz {
    void operator()(gzFile gz) const { gzclose(gz); }
  };

  fs::path file_;
  std::unique_ptr<std::FILE, CloseFile> plain_;
  std::unique_ptr<gzFile_s, CloseGz> gz_;
  uint64_t size_ = 0;  // plain files only
  uint64_t offset_ = 0;
};

ByteStream::ByteStream(fs::path file) : file_(std::move(file)) {
  plain_.reset(std::fopen(file_.string().c_str(), "rb"));
  if (!plain_)
    throw std::runtime_error(
        fmt::format("{}: cannot open: {}", file_.string(), std::strerror(errno)));
  std::array<uint8_t, 2> magic{};
  const bool gzip = std::fread(magic.data(), 1, magic.size(), plain_.get()) == magic.size() &&
                    magic[0] == 0x1f && magic[1] == 0x8b;
  if (!gzip) {
    std::error_code error;
    size_ = fs::file_size(file_, error);
    if (error)
      throw std::runtime_error(fmt::format("{}: cannot stat: {}", file_.string(), error.message()));
    std::rewind(plain_.get());
    return;
  }
  plain_.reset();
  gz_.reset(gzopen(file_.string().c_str(), "rb"));
  if (!gz_)
    throw std::runtime_error(
        fmt::format("{}: cannot open: {}", file_.string(), std::strerror(errno)));
  gzbuffer(gz_.get(), 128 * 1024);
}

std::optional<uint64_t> ByteStream::remaining() const {
  if (gz_) return std::nullopt;
  return size_ > offset_ ? size_ - offset_ : 0;
}

std::size_t ByteStream::read_some(uint8_t* out, std::size_t n) {
  std::size_t got = 0;
  if (plain_) {
    got = std::fread(out, 1, n, plain_.get());
    if (got < n && std::ferror(plain_.get()))
      throw DataError(file_, offset_ + got, fmt::format("read error: {}", std::strerror(errno)));
  } else {
    while (got < n) {
      const auto ask = static_cast<unsigned>(std::min(n - got, kChunk));
      const int r = gzread(gz_.get(), out + got, ask);
      if (r < 0) {
        int code = Z_OK;
        const char* message = gzerror(gz_.get(), &code);
        throw DataError(
            file_, offset_ + got,
            fmt::format("expected a valid gzip stream, found corrupt data ({})", message));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
  }
  offset_ += got;
  return got;
}

DataError ByteStream::truncated(uint64_t start, uint64_t expected, uint64_t end,
                                std::string_view what) const {
  std::string_view found = "the end of the file";
  if (gz_) {
    int code = Z_OK;
    gzerror(gz_.get(), &code);
    found = code == Z_BUF_ERROR ? "the end of a gzip stream that is cut short"
                                : "the end of the decompressed data";
  }
  return DataError(file_, end,
                   fmt::format("expected {} ({} bytes from byte {}), found {} after {} bytes", what,
                               expected, start, found, end - start));
}

void ByteStream::read_exact(uint8_t* out, std::size_t n, std::string_view what) {
  const uint64_t start = offset_;
  if (read_some(out, n) < n) throw truncated(start, n, offset_, what);
}

void ByteStream::require(uint64_t bytes, std::string_view what) const {
  if (gz_ || bytes <= size_ - std::min(offset_, size_)) return;
  throw truncated(offset_, bytes, size_, what);
}

void ByteStream::expect_end(std::string_view what) {
  uint8_t extra = 0;
  const uint64_t end = offset_;
  if (read_some(&extra, 1) == 0) {
    int code = Z_OK;
    if (gz_) gzerror(gz_.get(), &code);
    if (code == Z_BUF_ERROR)
      throw DataError(file_, end, "expected the gzip trailer, found a stream that is cut short");
    return;
  }
  const std::string more =
      gz_ ? "more bytes" : fmt::format("{} more bytes", size_ - std::min(end, size_));
  throw DataError(file_, end,
                  fmt::format("expected the end of the file after {}, found {}", what, more));
}

// A body of `bytes` bytes, read in chunks of at most kChunk bytes (see the file comment).
std::vector<std::vector<uint8_t>> read_body(ByteStream& in, uint64_t bytes, std::string_view what) {
  in.require(bytes, what);
  const uint64_t start = in.offset();
  std::vector<std::vector<uint8_t>> chunks;
  for (uint64_t left = bytes; left > 0;) {
    std::vector<uint8_t> chunk(std::min<uint64_t>(left, kChunk));
    if (in.read_some(chunk.data(), chunk.size()) < chunk.size())
      throw in.truncated(start, bytes, in.offset(), what);
    left -= chunk.size();
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

// `path` if it exists, else the same path with ".gz" appended (or removed, if it has one).
fs::path existing_path(const fs::path& path) {
  if (fs::exists(path)) return path;
  const fs::path other = path.extension() == ".gz" ? fs::path(path).replace_extension()
                                                   : fs::path(path.string() + ".gz");
  if (fs::exists(other)) return other;
  throw std::runtime_error(
      fmt::format("cannot find {} (also tried {})", path.string(), other.string()));
}

// The dimensions of an IDX file of unsigned bytes, one per entry of `dim_names` (which say
// what each one counts); `kind` names the contents ("images") in messages.
std::vector<uint32_t> read_idx_header(ByteStream& in, std::string_view kind,
                                      std::span<const std::string_view> dim_names) {
  std::array<uint8_t, 4> word{};
  in.read_exact(word.data(), word.size(), "the magic number");
  const auto ndims = static_cast<uint32_t>(dim_names.size());
  const uint32_t found = big_endian(word);
  const std::string expected =
      fmt::format("magic {:#010x} (IDX {}: unsigned bytes, {} dimension{})", 0x800u | ndims, kind,
                  ndims, ndims == 1 ? "" : "s");
  if (word[0] != 0 || word[1] != 0)
    throw DataError(in.file(), 0, fmt::format("expected {}, found {:#010x}", expected, found));
  if (word[2] != 0x08)
    throw DataError(in.file(), 2,
                    fmt::format("expected {}, found element type {:#04x} (magic {:#010x})",
                                expected, word[2], found));
  if (word[3] != ndims)
    throw DataError(in.file(), 3,
                    fmt::format("expected {}, found {} dimension{} (magic {:#010x})", expected,
                                word[3], word[3] == 1 ? "" : "s", found));
  std::vector<uint32_t> dims;
  for (const std::string_view name : dim_names) {
    in.read_exact(word.data(), word.size(), name);
    dims.push_back(big_endian(word));
  }
  return dims;
}

constexpr std::array<std::string_view, 3> kImageDims = {
    "the number of images", "the number of rows", "the number of columns"};
constexpr std::array<std::string_view, 1> kLabelDims = {"the number of labels"};

constexpr int64_t kCifarClasses = 10;
constexpr uint64_t kCifarPixels = 3 * 32 * 32;
constexpr uint64_t kCifarRecord = 1 + kCifarPixels;
// CIFAR-10 records converted per read.
constexpr uint64_t kCifarBlock = 256;

}  // namespace

// ---- Dataset ----

int64_t Dataset::size() const {
  return x.defined() ? x.size(0) : 0;
}

int64_t Dataset::features() const {
  return x.defined() ? x.size(1) : 0;
}

Dataset Dataset::subset(std::span<const int64_t> rows) const {
  const int64_t n = size();
  const int64_t d = features();
  if (static_cast<int64_t>(y.size()) != n)
    throw std::invalid_argument(fmt::format("Dataset::subset: {} labels for {} rows", y.size(), n));
  Dataset out;
  out.num_classes = num_classes;
  out.sample_shape = sample_shape;
  out.name = name;
  for (const int64_t row : rows)
    if (row < 0 || row >= n)
      throw std::out_of_range(fmt::format("Dataset::subset: row {} is outside [0, {})", row, n));
  if (rows.empty()) {  // (also of a default-constructed Dataset, whose x is undefined)
    out.x = ag::Tensor::empty({0, d});
    return out;
  }
  copy_rows(x, rows, out.x);
  out.y.reserve(rows.size());
  for (const int64_t row : rows) out.y.push_back(y[static_cast<std::size_t>(row)]);
  return out;
}

void copy_rows(const ag::Tensor& x, std::span<const int64_t> rows, ag::Tensor& out) {
  if (out.defined() && x.defined() && out.impl()->storage == x.impl()->storage)
    throw std::invalid_argument(
        "copy_rows: the output tensor shares its storage with the input; pass one of its own");
  const int64_t B = static_cast<int64_t>(rows.size()), N = x.size(0), D = x.size(1);
  for (std::size_t b = 0; b < rows.size(); ++b)
    if (rows[b] < 0 || rows[b] >= N)
      throw std::out_of_range(fmt::format(
          "copy_rows: row {} (at position {}) is outside the {} rows of the input", rows[b], b, N));
  if (!out.defined() || out.shape() != ag::Shape{B, D} || out.dtype() != x.dtype())
    out = ag::Tensor::empty({B, D}, x.dtype());
  const std::size_t row_bytes = static_cast<std::size_t>(D) *
                                (x.dtype() == ag::DType::Float64 ? sizeof(double) : sizeof(float));
  const auto* src = static_cast<const std::byte*>(x.impl()->storage->data);
  auto* dst = static_cast<std::byte*>(out.impl()->storage->data);
  // Over the threads in parts of at least 64 KiB: rows drawn at random from a large dataset are
  // each a cache (and TLB) miss, and two cores keep twice as many of them in flight.
  constexpr int64_t kBytesPerPart = int64_t{1} << 16;
  const int64_t rows_per_part =
      std::max<int64_t>(1, kBytesPerPart / std::max<int64_t>(int64_t(row_bytes), 1));
  ag::parallel_for(B, rows_per_part, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      std::memcpy(dst + b * row_bytes, src + rows[static_cast<std::size_t>(b)] * row_bytes,
                  row_bytes);
  });
  out.bump_version();  // a graph that saw the previous batch must not run on this one
}

Dataset Dataset::head(int64_t n) const {
  if (n < 0) throw std::invalid_argument(fmt::format("Dataset::head: n = {} is negative", n));
  std::vector<int64_t> rows(static_cast<std::size_t>(std::min(n, size())));
  std::iota(rows.begin(), rows.end(), int64_t{0});
  return subset(rows);
}

// ---- IDX ----

Dataset read_idx(const fs::path& images_path, const fs::path& labels_path, int64_t num_classes) {
  if (num_classes < 1)
    throw std::invalid_argument(
        fmt::format("read_idx: num_classes = {} must be positive", num_classes));

  ByteStream images(existing_path(images_path));
  const std::vector<uint32_t> dims = read_idx_header(images, "images", kImageDims);
  const uint64_t count = dims[0];
  const uint64_t rows = dims[1];
  const uint64_t cols = dims[2];
  if (rows == 0 || cols == 0)
    throw DataError(images.file(), rows == 0 ? 8 : 12,
                    fmt::format("expected images of at least 1x1 pixels, found {}x{}", rows, cols));
  const uint64_t pixels = rows * cols;  // < 2^64: both are 32-bit
  if (pixels >
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / std::max<uint64_t>(count, 1))
    throw DataError(images.file(), 4,
                    fmt::format("expected a header whose size fits in 63 bits, found {} images "
                                "of {}x{} pixels",
                                count, rows, cols));
  const std::string pixels_what =
      fmt::format("the pixels of {} images of {}x{}", count, rows, cols);
  images.require(count * pixels, pixels_what);

  ByteStream labels(existing_path(labels_path));
  const uint64_t label_count = read_idx_header(labels, "labels", kLabelDims)[0];
  if (label_count != count)
    throw DataError(labels.file(), 4,
                    fmt::format("expected {} labels, one per image in {}, found {}", count,
                                images.file().string(), label_count));
  const std::string labels_what = fmt::format("{} labels", count);

  Dataset data;
  data.num_classes = num_classes;
  data.sample_shape = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
  const uint64_t labels_start = labels.offset();
  const std::vector<std::vector<uint8_t>> label_bytes = read_body(labels, count, labels_what);
  labels.expect_end(labels_what);
  data.y.reserve(count);  // only now: the bytes are there
  for (const std::vector<uint8_t>& chunk : label_bytes) {
    for (const uint8_t label : chunk) {
      if (label >= num_classes)
        throw DataError(labels.file(), labels_start + data.y.size(),
                        fmt::format("expected the label of example {} in [0, {}), found {}",
                                    data.y.size(), num_classes, label));
      data.y.push_back(label);
    }
  }

  const std::vector<std::vector<uint8_t>> body = read_body(images, count * pixels, pixels_what);
  images.expect_end(pixels_what);
  data.x = ag::Tensor::empty({static_cast<int64_t>(count), static_cast<int64_t>(pixels)});
  float* out = data.x.data<float>();
  for (const std::vector<uint8_t>& chunk : body)
    out = scale_pixels(chunk.data(), chunk.size(), out);
  return data;
}

Dataset load_idx_dir(const fs::path& dir, const std::string& split, std::string name) {
  if (split != "train" && split != "test")
    throw std::invalid_argument(
        fmt::format("load_idx_dir: split \"{}\" is neither \"train\" nor \"test\"", split));
  const std::string prefix = split == "train" ? "train" : "t10k";
  Dataset data =
      read_idx(dir / (prefix + "-images-idx3-ubyte"), dir / (prefix + "-labels-idx1-ubyte"));
  data.name = std::move(name);
  return data;
}

// ---- CIFAR-10 ----

Dataset load_cifar10(const fs::path& dir, const std::string& split) {
  std::vector<std::string> names;
  if (split == "train") {
    for (int batch = 1; batch <= 5; ++batch)
      names.push_back(fmt::format("data_batch_{}.bin", batch));
  } else if (split == "test") {
    names.push_back("test_batch.bin");
  } else {
    throw std::invalid_argument(
        fmt::format("load_cifar10: split \"{}\" is neither \"train\" nor \"test\"", split));
  }
  // The batches sit in dir itself or in the folder the official archive unpacks to.
  const fs::path nested = dir / "cifar-10-batches-bin";
  const fs::path base = !fs::exists(dir / names[0]) && fs::exists(nested / names[0]) ? nested : dir;

  // Open and size-check every batch before allocating anything.
  std::vector<ByteStream> batches;
  uint64_t records = 0;
  for (const std::string& name : names) {
    if (!fs::exists(base / name))
      throw std::runtime_error(fmt::format("load_cifar10: cannot find {} (looked in {} and {})",
                                           name, dir.string(), nested.string()));
    ByteStream& in = batches.emplace_back(base / name);
    if (in.compressed())
      throw DataError(in.file(), 0,
                      "expected an uncompressed CIFAR-10 batch, found a gzip stream (unpack it)");
    const uint64_t size = *in.remaining();
    if (size == 0)
      throw DataError(in.file(), 0,
                      fmt::format("expected {}-byte records, found an empty file", kCifarRecord));
    if (size % kCifarRecord != 0)
      throw DataError(
          in.file(), size - size % kCifarRecord,
          fmt::format("expected a whole number of {}-byte records, found {} bytes: "
                      "record {} is partial ({} of {} bytes)",
                      kCifarRecord, size, size / kCifarRecord, size % kCifarRecord, kCifarRecord));
    records += size / kCifarRecord;
  }

  Dataset data;
  data.x = ag::Tensor::empty({static_cast<int64_t>(records), static_cast<int64_t>(kCifarPixels)});
  data.y.reserve(records);
  data.num_classes = kCifarClasses;
  data.sample_shape = {3, 32, 32};
  data.name = "cifar10";
  float* out = data.x.data<float>();
  std::vector<uint8_t> block(kCifarBlock * kCifarRecord);
  for (ByteStream& in : batches) {
    for (uint64_t first = 0, left = *in.remaining() / kCifarRecord; left > 0;) {
      const uint64_t n = std::min(left, kCifarBlock);
      in.read_exact(block.data(), n * kCifarRecord,
                    fmt::format("records {} to {}", first, first + n - 1));
      for (uint64_t r = 0; r < n; ++r) {
        const uint8_t* record = block.data() + r * kCifarRecord;
        if (record[0] >= kCifarClasses)
          throw DataError(in.file(), (first + r) * kCifarRecord,
                          fmt::format("expected the label of record {} in [0, {}), found {}",
                                      first + r, kCifarClasses, record[0]));
        data.y.push_back(record[0]);
        out = scale_pixels(record + 1, kCifarPixels, out);
      }
      first += n;
      left -= n;
    }
  }
  return data;
}

// ---- Spiral ----

Dataset make_spiral(int64_t classes, int64_t points_per_class, double noise, ag::Generator& gen) {
  if (classes < 1 || classes > std::numeric_limits<int32_t>::max() || points_per_class < 1)
    throw std::invalid_argument(
        fmt::format("make_spiral: need at least 1 class and 1 point per class, got {} and {}",
                    classes, points_per_class));
  if (!(noise >= 0.0))
    throw std::invalid_argument(fmt::format("make_spiral: noise = {} must be >= 0", noise));
  Dataset data;
  data.x = ag::Tensor::empty({ag::shape_numel({classes, points_per_class}), 2});
  data.num_classes = classes;
  data.sample_shape = {2};
  data.name = "spiral";
  data.y.reserve(static_cast<std::size_t>(classes * points_per_class));
  float* out = data.x.data<float>();
  for (int64_t j = 0; j < classes; ++j) {
    for (int64_t i = 0; i < points_per_class; ++i) {
      // r = linspace(0, 1, P)[i] = i / (P - 1) (0 when P == 1), and
      // t = linspace(4j, 4(j + 1), P)[i] + noise = 4j + 4r + noise.
      const double r = points_per_class > 1 ? static_cast<double>(i) / (points_per_class - 1) : 0;
      const double t = 4.0 * static_cast<double>(j) + 4.0 * r + noise * gen.normal();
      *out++ = static_cast<float>(r * std::sin(t));
      *out++ = static_cast<float>(r * std::cos(t));
      data.y.push_back(static_cast<int32_t>(j));
    }
  }
  return data;
}

// ---- Standardizer ----

namespace {

// out = (x - mean) / std row by row; x: [n, d], mean and std: [d]; out may be x.
void standardize(const float* x, const float* mean, const float* std, int64_t n, int64_t d,
                 float* out) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) out[i * d + k] = (x[i * d + k] - mean[k]) / std[k];
}

void check_fitted(const Standardizer& s, const ag::Tensor& x) {
  if (!s.mean.defined() || !s.std.defined())
    throw std::invalid_argument("Standardizer: not fitted (call Standardizer::fit first)");
  if (!x.defined() || x.dim() != 2 || x.size(1) != s.mean.numel())
    throw std::invalid_argument(
        fmt::format("Standardizer: x is {}, expected [N, {}] (the features it was fitted on)",
                    x.defined() ? ag::shape_str(x.shape()) : "undefined", s.mean.numel()));
}

}  // namespace

Standardizer Standardizer::fit(const Dataset& train) {
  const int64_t n = train.size();
  const int64_t d = train.features();
  if (n == 0) throw std::invalid_argument("Standardizer::fit: the training set has no rows");
  const float* x = train.x.data<float>();
  // Two passes in float64: the mean, then the mean squared deviation from it.
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  std::vector<double> var(static_cast<std::size_t>(d), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) mean[k] += x[i * d + k];
  for (double& m : mean) m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      const double dev = x[i * d + k] - mean[k];
      var[k] += dev * dev;
    }
  }
  Standardizer s;
  s.mean = ag::Tensor::empty({d});
  s.std = ag::Tensor::empty({d});
  float* m = s.mean.data<float>();
  float* sd = s.std.data<float>();
  for (int64_t k = 0; k < d; ++k) {
    m[k] = static_cast<float>(mean[k]);
    sd[k] = static_cast<float>(std::max(std::sqrt(var[k] / static_cast<double>(n)), kMinStd));
  }
  return s;
}

void Standardizer::apply(Dataset& data) const {
  check_fitted(*this, data.x);
  float* x = data.x.data<float>();
  standardize(x, mean.data<float>(), std.data<float>(), data.x.size(0), data.x.size(1), x);
  data.x.bump_version();  // changed in place
}

ag::Tensor Standardizer::transform(const ag::Tensor& x) const {
  check_fitted(*this, x);
  ag::Tensor out = ag::Tensor::empty(x.shape());
  standardize(x.data<float>(), mean.data<float>(), std.data<float>(), x.size(0), x.size(1),
              out.data<float>());
  return out;
}

// ---- Validation split ----

std::pair<Dataset, Dataset> split_validation(const Dataset& data, int64_t val_count,
                                             ag::Generator& gen) {
  const int64_t n = data.size();
  if (val_count < 0 || val_count >= n)
    throw std::invalid_argument(fmt::format(
        "split_validation: val_count = {} must be in [0, {}) for {} rows", val_count, n, n));
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  // A partial Fisher-Yates shuffle: the first val_count entries become a uniform random sample.
  for (int64_t i = 0; i < val_count; ++i)
    std::swap(order[i], order[i + static_cast<int64_t>(gen.below(static_cast<uint64_t>(n - i)))]);
  std::sort(order.begin(), order.begin() + val_count);
  std::sort(order.begin() + val_count, order.end());
  const std::span<const int64_t> rows(order);
  return {data.subset(rows.subspan(static_cast<std::size_t>(val_count))),
          data.subset(rows.first(static_cast<std::size_t>(val_count)))};
}

}  // namespace nn
