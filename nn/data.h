// Datasets: the readers that turn files on disk into a Dataset (an [N, D] float32 tensor of
// examples and their labels), a synthetic spiral, and the two preprocessing steps a training
// script needs (per-feature standardisation, a held-out validation split). Just data: nothing
// here requires or computes a gradient.
//
// Readers trust no header. Every count, magic number and size is checked against the file, and
// a bad one throws DataError naming the file, the byte offset and what was expected; a header
// that claims more data than the file holds is refused before anything of that size is
// allocated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace nn {

/// A labelled set of examples, one row per example.
///
/// Copying a Dataset copies the handle of `x`, not its values (as for any ag::Tensor); subset()
/// and head() copy the rows they keep.
struct Dataset {
  /// [N, D], float32; image pixels scaled to [0, 1].
  ag::Tensor x;
  /// N labels in [0, num_classes).
  std::vector<int32_t> y;
  int64_t num_classes = 0;
  /// The shape of one example before flattening: {rows, cols} for IDX, {3, 32, 32} for
  /// CIFAR-10 (channel-major, as stored), {2} for the spiral. Its product is D.
  ag::Shape sample_shape;
  /// "fashion-mnist", "mnist", "cifar10", "spiral" (empty from read_idx).
  std::string name;

  /// N, the number of examples (0 for a default-constructed Dataset).
  int64_t size() const;
  /// D, the number of features per example.
  int64_t features() const;
  /// A copy of the given rows, in that order (repeats allowed). Throws std::out_of_range on a
  /// row outside [0, N).
  Dataset subset(std::span<const int64_t> rows) const;
  /// A copy of the first min(n, N) rows. Throws std::invalid_argument if n < 0.
  Dataset head(int64_t n) const;
};

/// Copies the given rows (a batch, say) of x: [N, D] into out: [rows, D] (reallocated only if its
/// shape differs). Throws std::out_of_range for a row outside [0, N), std::invalid_argument if out
/// is x or shares its storage.
void copy_rows(const ag::Tensor& x, std::span<const int64_t> rows, ag::Tensor& out);

/// A file that is not what it should be. what() reads "<file>: byte <offset>: <problem>", where
/// the problem says what was expected and what was found; for a truncated file the offset is
/// where the data ends.
class DataError : public std::runtime_error {
 public:
  DataError(const std::filesystem::path& file, uint64_t offset, const std::string& problem);
  const std::filesystem::path& file() const { return file_; }
  uint64_t offset() const { return offset_; }

 private:
  std::filesystem::path file_;
  uint64_t offset_;
};

/// Reads an IDX pair in the MNIST / Fashion-MNIST format: `images` of magic 0x00000803
/// (unsigned bytes, dimensions N x rows x cols, any rows and cols) and `labels` of magic
/// 0x00000801 (N unsigned bytes in [0, num_classes)). Returns x: [N, rows * cols] with pixels
/// scaled to [0, 1], sample_shape {rows, cols}, and an empty name.
///
/// A path that does not exist is retried with ".gz" appended (or removed, if it ends in .gz);
/// std::runtime_error names both paths if neither exists. A file that starts with the gzip
/// magic bytes is decompressed through zlib, whatever its name. Bad files throw DataError; as a
/// compressed file's size is unknown until it is read, its body is read in bounded chunks and
/// fails where the stream ends. Bytes after the declared data are an error too.
Dataset read_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                 int64_t num_classes = 10);

/// Reads the "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte) or "test"
/// (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) split of an MNIST-style directory, each file
/// with or without .gz, and names the result `name`. Throws std::invalid_argument for another
/// split and std::runtime_error naming the paths tried when a file is missing.
Dataset load_idx_dir(const std::filesystem::path& dir, const std::string& split,
                     std::string name = "fashion-mnist");

/// Reads the CIFAR-10 binary batches of `dir` (or of its cifar-10-batches-bin subdirectory):
/// "train" is data_batch_1.bin .. data_batch_5.bin in that order, "test" is test_batch.bin.
/// Each 3073-byte record is a label byte in [0, 10) then 3072 pixel bytes: the R, G and B planes
/// of a 32x32 image. Returns x: [N, 3072] scaled to [0, 1], sample_shape {3, 32, 32}, name
/// "cifar10". The batches must be uncompressed (as the official binary archive unpacks); a file
/// whose size is not a positive multiple of 3073 throws DataError naming the partial record.
Dataset load_cifar10(const std::filesystem::path& dir, const std::string& split);

/// The spiral of the CS231n neural-network case study: `classes` arms of `points_per_class`
/// points each, rows ordered by class. For class j, r = linspace(0, 1, P) and
/// t = linspace(4j, 4(j + 1), P) + noise * randn(P), and a point is (r sin t, r cos t).
/// Returns x: [classes * P, 2], sample_shape {2}, name "spiral". The same `gen` state gives the
/// same data.
Dataset make_spiral(int64_t classes, int64_t points_per_class, double noise, ag::Generator& gen);

/// Per-feature standardisation, x' = (x - mean) / std, with statistics fitted on a training set
/// and then applied unchanged to every other set.
struct Standardizer {
  /// The smallest std used: a feature whose training std is below it (a pixel that is almost
  /// always black, say) is divided by kMinStd instead. For pixels in [0, 1] that bounds what
  /// such a feature can become: a deviation of one grey level (1/255) maps to 0.4 and a
  /// full-scale one to 100, instead of exploding, while every feature that varies noticeably
  /// keeps its own scale. (On Fashion-MNIST 11 of the 784 pixels are floored.)
  static constexpr double kMinStd = 1e-2;

  /// [D], float32: the per-feature mean of the training set.
  ag::Tensor mean;
  /// [D], float32: max(the per-feature population std of the training set, kMinStd).
  ag::Tensor std;

  /// Computes mean and std over the rows of train.x (in float64). Throws std::invalid_argument
  /// if train has no rows.
  static Standardizer fit(const Dataset& train);
  /// data.x = (data.x - mean) / std, written into data.x's storage (so every copy sharing that
  /// tensor sees it). Throws std::invalid_argument if D differs from mean's.
  void apply(Dataset& data) const;
  /// x: [N, D] float32 -> a new [N, D] tensor (x - mean) / std; x is left unchanged.
  ag::Tensor transform(const ag::Tensor& x) const;
};

/// Holds out `val_count` rows drawn at random from `gen` as a validation set and returns
/// {train, val}; each keeps its rows in their original order. Throws std::invalid_argument if
/// val_count < 0 or val_count >= N.
std::pair<Dataset, Dataset> split_validation(const Dataset& data, int64_t val_count,
                                             ag::Generator& gen);

}  // namespace nn
