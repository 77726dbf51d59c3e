// Tests of nn/data.h: the IDX and CIFAR-10 readers on small files each test writes into a
// temporary directory of its own (every kind of bad file included), the spiral, the
// Standardizer, split_validation, subset/head, and the real Fashion-MNIST when it is installed.
#include "nn/data.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// A fresh directory under the system's temp directory, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("ag_test_data_" + std::string(test->test_suite_name()) + "_" + test->name() + "_" +
             std::to_string(std::random_device{}()) + "_" + std::to_string(now));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void put_u32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

Bytes idx_images(uint32_t count, uint32_t rows, uint32_t cols, const Bytes& pixels,
                 uint32_t magic = 0x00000803) {
  Bytes out;
  put_u32(out, magic);
  put_u32(out, count);
  put_u32(out, rows);
  put_u32(out, cols);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

Bytes idx_labels(const Bytes& labels) {
  Bytes out;
  put_u32(out, 0x00000801);
  put_u32(out, static_cast<uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// 3 images of 2x3 whose 18 pixels are 0, 15, ..., 255, and their labels.
const Bytes kPixels = [] {
  Bytes p(18);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<uint8_t>(15 * i);
  return p;
}();
const Bytes kLabels = {7, 0, 9};

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_gz(const fs::path& path, const Bytes& bytes) {
  gzFile gz = gzopen(path.string().c_str(), "wb");
  if (!gz) throw std::runtime_error("cannot open " + path.string());
  const int written = gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  if (gzclose(gz) != Z_OK || written != static_cast<int>(bytes.size()))
    throw std::runtime_error("cannot write " + path.string());
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// Runs f and returns the DataError it throws (a test failure if it throws none).
template <class F>
nn::DataError data_error(F&& f) {
  try {
    f();
  } catch (const nn::DataError& e) {
    return e;
  }
  ADD_FAILURE() << "expected nn::DataError, nothing was thrown";
  return nn::DataError("", 0, "");
}

// The error names `file` and `offset` in its accessors and in what().
void expect_names(const nn::DataError& e, const fs::path& file, uint64_t offset) {
  EXPECT_EQ(e.file(), file);
  EXPECT_EQ(e.offset(), offset);
  EXPECT_TRUE(contains(e.what(), file.string()));
  EXPECT_TRUE(contains(e.what(), "byte " + std::to_string(offset) + ":"));
}

nn::Dataset make_dataset(const std::vector<double>& values, int64_t d, std::vector<int32_t> labels,
                         int64_t num_classes) {
  nn::Dataset data;
  data.x = ag::tensor(values, {static_cast<int64_t>(values.size()) / d, d});
  data.y = std::move(labels);
  data.num_classes = num_classes;
  data.sample_shape = {d};
  data.name = "test";
  return data;
}

// The 3 images of kPixels: the values, labels and shapes read_idx must return.
void expect_small_idx(const nn::Dataset& data) {
  ASSERT_EQ(data.size(), 3);
  ASSERT_EQ(data.features(), 6);
  EXPECT_EQ(data.x.shape(), (ag::Shape{3, 6}));
  EXPECT_EQ(data.x.dtype(), ag::DType::Float32);
  EXPECT_EQ(data.sample_shape, (ag::Shape{2, 3}));
  EXPECT_EQ(data.num_classes, 10);
  EXPECT_EQ(data.y, (std::vector<int32_t>{7, 0, 9}));
  const float* x = data.x.data<float>();
  for (std::size_t i = 0; i < kPixels.size(); ++i)
    EXPECT_EQ(x[i], static_cast<float>(kPixels[i]) / 255.0f) << "pixel " << i;
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[17], 1.0f);
}

// ---- IDX ----

TEST(Idx, ReadsRawImagesAndLabels) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels(kLabels));
  expect_small_idx(nn::read_idx(dir / "images", dir / "labels"));
}

TEST(Idx, ReadsGzipCompressedFiles) {
  TempDir dir;
  write_gz(dir / "images.gz", idx_images(3, 2, 3, kPixels));
  write_gz(dir / "labels.gz", idx_labels(kLabels));
  expect_small_idx(nn::read_idx(dir / "images.gz", dir / "labels.gz"));
}

TEST(Idx, RetriesPathWithAndWithoutGzSuffix) {
  TempDir dir;
  write_gz(dir / "images.gz", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels(kLabels));
  expect_small_idx(nn::read_idx(dir / "images", dir / "labels.gz"));
}

TEST(Idx, ReadsImagesOfAnySize) {
  TempDir dir;
  Bytes pixels(4 * 5 * 7);
  std::iota(pixels.begin(), pixels.end(), uint8_t{0});
  write_file(dir / "images", idx_images(4, 5, 7, pixels));
  write_file(dir / "labels", idx_labels({1, 2, 3, 4}));
  const nn::Dataset data = nn::read_idx(dir / "images", dir / "labels", 5);
  EXPECT_EQ(data.x.shape(), (ag::Shape{4, 35}));
  EXPECT_EQ(data.sample_shape, (ag::Shape{5, 7}));
  EXPECT_EQ(data.num_classes, 5);
  EXPECT_EQ(data.x.data<float>()[139], 139.0f / 255.0f);
}

TEST(Idx, MissingFileNamesBothPathsTried) {
  TempDir dir;
  write_file(dir / "labels", idx_labels(kLabels));
  try {
    nn::read_idx(dir / "images", dir / "labels");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), (dir / "images").string()));
    EXPECT_TRUE(contains(e.what(), (dir / "images.gz").string()));
  }
}

TEST(Idx, TruncatedHeaderIsRefused) {
  TempDir dir;
  const Bytes full = idx_images(3, 2, 3, kPixels);
  write_file(dir / "images", Bytes(full.begin(), full.begin() + 10));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 10);
  EXPECT_TRUE(contains(e.what(), "expected the number of rows (4 bytes from byte 8)"));
  EXPECT_TRUE(contains(e.what(), "after 2 bytes"));
}

TEST(Idx, TruncatedImageBodyIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, Bytes(kPixels.begin(), kPixels.begin() + 10)));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 26);
  EXPECT_TRUE(contains(e.what(), "expected the pixels of 3 images of 2x3 (18 bytes from byte 16)"));
  EXPECT_TRUE(contains(e.what(), "after 10 bytes"));
}

TEST(Idx, TruncatedGzipBodyFailsAtTheTruncationPoint) {
  TempDir dir;
  write_gz(dir / "images.gz", idx_images(3, 2, 3, Bytes(kPixels.begin(), kPixels.begin() + 10)));
  write_gz(dir / "labels.gz", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images.gz", dir / "labels.gz"); });
  expect_names(e, dir / "images.gz", 26);
  EXPECT_TRUE(contains(e.what(), "(18 bytes from byte 16)"));
}

TEST(Idx, TruncatedLabelsAreRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  Bytes labels = idx_labels(kLabels);
  labels.pop_back();
  write_file(dir / "labels", labels);
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "labels", 10);
  EXPECT_TRUE(contains(e.what(), "expected 3 labels (3 bytes from byte 8)"));
}

TEST(Idx, CutGzipStreamIsRefused) {
  TempDir dir;
  Bytes pixels(3 * 28 * 28);
  std::mt19937 rng(1);
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(rng());
  write_gz(dir / "full.gz", idx_images(3, 28, 28, pixels));
  std::ifstream in(dir / "full.gz", std::ios::binary);
  Bytes compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  compressed.resize(compressed.size() / 2);
  write_file(dir / "images.gz", compressed);
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images.gz", dir / "labels"); });
  EXPECT_EQ(e.file(), dir / "images.gz");
  EXPECT_GT(e.offset(), 16u);
  EXPECT_LT(e.offset(), 16u + pixels.size());
  EXPECT_TRUE(contains(e.what(), "cut short"));
}

TEST(Idx, WrongImageMagicIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels, 0x12345678));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 0);
  EXPECT_TRUE(contains(e.what(), "expected magic 0x00000803"));
  EXPECT_TRUE(contains(e.what(), "found 0x12345678"));
}

TEST(Idx, WrongLabelMagicIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  Bytes labels = idx_labels(kLabels);
  std::swap(labels[0], labels[3]);  // 0x01080000: the magic written little-endian
  std::swap(labels[1], labels[2]);
  write_file(dir / "labels", labels);
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "labels", 0);
  EXPECT_TRUE(contains(e.what(), "expected magic 0x00000801"));
  EXPECT_TRUE(contains(e.what(), "found 0x01080000"));
}

TEST(Idx, WrongElementTypeIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels, 0x00000d03));  // float32 pixels
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 2);
  EXPECT_TRUE(contains(e.what(), "expected magic 0x00000803"));
  EXPECT_TRUE(contains(e.what(), "found element type 0x0d"));
}

TEST(Idx, WrongNumberOfDimensionsIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels, 0x00000802));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 3);
  EXPECT_TRUE(contains(e.what(), "3 dimensions"));
  EXPECT_TRUE(contains(e.what(), "found 2 dimensions"));
}

TEST(Idx, SwappedImageAndLabelFilesAreRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "labels", dir / "images"); });
  expect_names(e, dir / "labels", 3);
  EXPECT_TRUE(contains(e.what(), "expected magic 0x00000803"));
  EXPECT_TRUE(contains(e.what(), "found 1 dimension (magic 0x00000801)"));
}

TEST(Idx, ImageAndLabelCountMismatchIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels({1, 2}));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "labels", 4);
  EXPECT_TRUE(contains(e.what(), "expected 3 labels"));
  EXPECT_TRUE(contains(e.what(), "found 2"));
}

TEST(Idx, LabelOutsideClassRangeNamesTheIndex) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels({1, 0, 10}));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "labels", 10);
  EXPECT_TRUE(contains(e.what(), "expected the label of example 2 in [0, 10), found 10"));
}

TEST(Idx, LabelAtOrAboveNumClassesIsRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 2, 3, kPixels));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels", 7); });
  expect_names(e, dir / "labels", 8);
  EXPECT_TRUE(contains(e.what(), "example 0 in [0, 7), found 7"));
}

TEST(Idx, TrailingBytesAreRefused) {
  TempDir dir;
  Bytes images = idx_images(3, 2, 3, kPixels);
  images.push_back(0);
  images.push_back(0);
  write_file(dir / "images", images);
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 34);
  EXPECT_TRUE(contains(e.what(), "expected the end of the file"));
  EXPECT_TRUE(contains(e.what(), "found 2 more bytes"));
}

TEST(Idx, ZeroSizedImagesAreRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(3, 0, 3, {}));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 8);
  EXPECT_TRUE(contains(e.what(), "found 0x3"));
}

// 2^20 images of 2^10 x 2^10 pixels: a header claiming 1 TiB, followed by 6 bytes.
constexpr uint32_t kHugeCount = 1u << 20;
constexpr uint32_t kHugeSide = 1u << 10;

TEST(Idx, TerabyteClaimIsRefusedWithoutAllocating) {
  TempDir dir;
  write_file(dir / "images", idx_images(kHugeCount, kHugeSide, kHugeSide, Bytes(6, 1)));
  write_file(dir / "labels", idx_labels(Bytes(3, 0)));
  const auto start = std::chrono::steady_clock::now();
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  expect_names(e, dir / "images", 22);
  EXPECT_TRUE(contains(e.what(), "(1099511627776 bytes from byte 16)"));
  EXPECT_TRUE(contains(e.what(), "after 6 bytes"));
}

TEST(Idx, TerabyteClaimInGzipFailsAtTheTruncationPoint) {
  TempDir dir;
  write_gz(dir / "images.gz", idx_images(kHugeCount, kHugeSide, kHugeSide, Bytes(6, 1)));
  Bytes labels;
  put_u32(labels, 0x00000801);
  put_u32(labels, kHugeCount);
  labels.resize(labels.size() + kHugeCount, 0);
  write_gz(dir / "labels.gz", labels);
  const auto start = std::chrono::steady_clock::now();
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images.gz", dir / "labels.gz"); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  expect_names(e, dir / "images.gz", 22);
  EXPECT_TRUE(contains(e.what(), "(1099511627776 bytes from byte 16)"));
}

TEST(Idx, OverflowingDimensionsAreRefused) {
  TempDir dir;
  write_file(dir / "images", idx_images(0xffffffff, 0xffffffff, 0xffffffff, kPixels));
  write_file(dir / "labels", idx_labels(kLabels));
  const nn::DataError e = data_error([&] { nn::read_idx(dir / "images", dir / "labels"); });
  expect_names(e, dir / "images", 4);
  EXPECT_TRUE(contains(e.what(), "4294967295 images of 4294967295x4294967295"));
}

// ---- load_idx_dir ----

TEST(LoadIdxDir, ReadsTrainAndTestSplitsByName) {
  TempDir dir;
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 2, 3, kPixels));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(kLabels));
  write_file(dir / "t10k-images-idx3-ubyte", idx_images(1, 2, 3, Bytes(6, 255)));
  write_file(dir / "t10k-labels-idx1-ubyte", idx_labels({4}));
  const nn::Dataset train = nn::load_idx_dir(dir.path(), "train");
  expect_small_idx(train);
  EXPECT_EQ(train.name, "fashion-mnist");
  const nn::Dataset test = nn::load_idx_dir(dir.path(), "test", "mnist");
  EXPECT_EQ(test.size(), 1);
  EXPECT_EQ(test.y, std::vector<int32_t>{4});
  EXPECT_EQ(test.x.data<float>()[5], 1.0f);
  EXPECT_EQ(test.name, "mnist");
}

TEST(LoadIdxDir, UnknownSplitIsRejected) {
  TempDir dir;
  EXPECT_THROW(nn::load_idx_dir(dir.path(), "validation"), std::invalid_argument);
}

TEST(LoadIdxDir, MissingFilesNameThePathsTried) {
  TempDir dir;
  try {
    nn::load_idx_dir(dir.path(), "test");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), (dir / "t10k-images-idx3-ubyte").string()));
    EXPECT_TRUE(contains(e.what(), (dir / "t10k-images-idx3-ubyte.gz").string()));
  }
}

// ---- CIFAR-10 ----

// `labels.size()` records; pixel p of record r is (r + p) mod 256.
Bytes cifar_batch(const Bytes& labels) {
  Bytes out;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    out.push_back(labels[r]);
    for (std::size_t p = 0; p < 3072; ++p) out.push_back(static_cast<uint8_t>((r + p) % 256));
  }
  return out;
}

TEST(Cifar10, ReadsTheFiveTrainBatchesInOrder) {
  TempDir dir;
  const std::vector<Bytes> labels = {{0}, {1, 2}, {3}, {4}, {5, 6, 9}};
  for (std::size_t b = 0; b < labels.size(); ++b)
    write_file(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_batch(labels[b]));
  write_file(dir / "test_batch.bin", cifar_batch({8}));
  const nn::Dataset data = nn::load_cifar10(dir.path(), "train");
  EXPECT_EQ(data.x.shape(), (ag::Shape{8, 3072}));
  EXPECT_EQ(data.y, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 9}));
  EXPECT_EQ(data.sample_shape, (ag::Shape{3, 32, 32}));
  EXPECT_EQ(data.num_classes, 10);
  EXPECT_EQ(data.name, "cifar10");
  // Row 2 is record 1 of batch 2: its first red pixel is 1, its first green pixel 1 + 1024.
  const float* row = data.x.data<float>() + 2 * 3072;
  EXPECT_EQ(row[0], 1.0f / 255.0f);
  EXPECT_EQ(row[1024], static_cast<float>((1 + 1024) % 256) / 255.0f);
  EXPECT_EQ(row[3071], static_cast<float>((1 + 3071) % 256) / 255.0f);
}

TEST(Cifar10, ReadsTestBatchFromBatchesBinSubdirectory) {
  TempDir dir;
  fs::create_directory(dir / "cifar-10-batches-bin");
  write_file(dir / "cifar-10-batches-bin" / "test_batch.bin", cifar_batch({8, 3}));
  const nn::Dataset data = nn::load_cifar10(dir.path(), "test");
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.y, (std::vector<int32_t>{8, 3}));
}

TEST(Cifar10, PartialRecordIsRefused) {
  TempDir dir;
  Bytes batch = cifar_batch({1, 2, 3});
  batch.resize(2 * 3073 + 100);
  write_file(dir / "test_batch.bin", batch);
  const nn::DataError e = data_error([&] { nn::load_cifar10(dir.path(), "test"); });
  expect_names(e, dir / "test_batch.bin", 2 * 3073);
  EXPECT_TRUE(contains(e.what(), "expected a whole number of 3073-byte records"));
  EXPECT_TRUE(contains(e.what(), "record 2 is partial (100 of 3073 bytes)"));
}

TEST(Cifar10, EmptyBatchIsRefused) {
  TempDir dir;
  write_file(dir / "test_batch.bin", {});
  const nn::DataError e = data_error([&] { nn::load_cifar10(dir.path(), "test"); });
  expect_names(e, dir / "test_batch.bin", 0);
  EXPECT_TRUE(contains(e.what(), "empty file"));
}

TEST(Cifar10, LabelAboveNineIsRefused) {
  TempDir dir;
  write_file(dir / "test_batch.bin", cifar_batch({1, 10, 3}));
  const nn::DataError e = data_error([&] { nn::load_cifar10(dir.path(), "test"); });
  expect_names(e, dir / "test_batch.bin", 3073);
  EXPECT_TRUE(contains(e.what(), "expected the label of record 1 in [0, 10), found 10"));
}

TEST(Cifar10, GzipCompressedBatchIsRefusedNamingIt) {
  TempDir dir;
  write_gz(dir / "test_batch.bin", cifar_batch({1}));
  const nn::DataError e = data_error([&] { nn::load_cifar10(dir.path(), "test"); });
  expect_names(e, dir / "test_batch.bin", 0);
  EXPECT_TRUE(contains(e.what(), "found a gzip stream"));
}

TEST(Cifar10, MissingBatchIsNamed) {
  TempDir dir;
  for (int b = 1; b <= 4; ++b)
    write_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_batch({0}));
  try {
    nn::load_cifar10(dir.path(), "train");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "data_batch_5.bin"));
  }
}

// ---- Spiral ----

TEST(Spiral, HasOneArmPerClassInClassOrder) {
  ag::Generator gen(0);
  const nn::Dataset data = nn::make_spiral(3, 100, 0.2, gen);
  EXPECT_EQ(data.x.shape(), (ag::Shape{300, 2}));
  EXPECT_EQ(data.sample_shape, ag::Shape{2});
  EXPECT_EQ(data.num_classes, 3);
  EXPECT_EQ(data.name, "spiral");
  ASSERT_EQ(data.y.size(), 300u);
  for (std::size_t i = 0; i < data.y.size(); ++i)
    EXPECT_EQ(data.y[i], static_cast<int32_t>(i / 100)) << "row " << i;
}

TEST(Spiral, WithoutNoiseFollowsTheCs231nFormula) {
  ag::Generator gen(0);
  const int64_t points = 5;
  const nn::Dataset data = nn::make_spiral(2, points, 0.0, gen);
  const float* x = data.x.data<float>();
  for (int64_t j = 0; j < 2; ++j) {
    for (int64_t i = 0; i < points; ++i) {
      const double r = static_cast<double>(i) / (points - 1);
      const double t = 4.0 * static_cast<double>(j) + 4.0 * r;
      const int64_t row = j * points + i;
      EXPECT_NEAR(x[2 * row], r * std::sin(t), 1e-6) << "row " << row;
      EXPECT_NEAR(x[2 * row + 1], r * std::cos(t), 1e-6) << "row " << row;
    }
  }
}

TEST(Spiral, SameSeedGivesSameData) {
  ag::Generator a(42);
  ag::Generator b(42);
  EXPECT_EQ(nn::make_spiral(3, 50, 0.2, a).x.to_vector(),
            nn::make_spiral(3, 50, 0.2, b).x.to_vector());
}

TEST(Spiral, DifferentSeedGivesDifferentData) {
  ag::Generator a(42);
  ag::Generator b(43);
  EXPECT_NE(nn::make_spiral(3, 50, 0.2, a).x.to_vector(),
            nn::make_spiral(3, 50, 0.2, b).x.to_vector());
}

TEST(Spiral, RejectsBadArguments) {
  ag::Generator gen(0);
  EXPECT_THROW(nn::make_spiral(0, 10, 0.2, gen), std::invalid_argument);
  EXPECT_THROW(nn::make_spiral(3, 0, 0.2, gen), std::invalid_argument);
  EXPECT_THROW(nn::make_spiral(3, 10, -1.0, gen), std::invalid_argument);
}

// ---- Standardizer ----

// Per-feature mean and population std of x: [N, D].
std::pair<std::vector<double>, std::vector<double>> column_stats(const ag::Tensor& x) {
  const int64_t n = x.size(0);
  const int64_t d = x.size(1);
  const std::vector<double> v = x.to_vector();
  std::vector<double> mean(d, 0.0);
  std::vector<double> sd(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) mean[k] += v[i * d + k] / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) sd[k] += std::pow(v[i * d + k] - mean[k], 2) / n;
  for (double& s : sd) s = std::sqrt(s);
  return {mean, sd};
}

nn::Dataset random_dataset(int64_t n, int64_t d, ag::Generator& gen) {
  std::vector<double> values(static_cast<std::size_t>(n * d));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto feature = static_cast<double>(i % static_cast<std::size_t>(d));
    values[i] = 3.0 + feature + (1.0 + feature) * gen.normal();
  }
  return make_dataset(values, d, std::vector<int32_t>(n, 0), 1);
}

TEST(Standardizer, GivesZeroMeanUnitStdOnTrain) {
  ag::Generator gen(1);
  nn::Dataset train = random_dataset(500, 4, gen);
  const nn::Standardizer s = nn::Standardizer::fit(train);
  EXPECT_EQ(s.mean.shape(), ag::Shape{4});
  EXPECT_EQ(s.std.shape(), ag::Shape{4});
  s.apply(train);
  const auto [mean, sd] = column_stats(train.x);
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(mean[k], 0.0, 1e-5) << "feature " << k;
    EXPECT_NEAR(sd[k], 1.0, 1e-5) << "feature " << k;
  }
}

TEST(Standardizer, AppliesTrainStatisticsToOtherData) {
  nn::Dataset train = make_dataset({1, 10, 3, 20, 5, 30}, 2, {0, 0, 0}, 1);
  nn::Dataset other = make_dataset({3, 20, 7, 0}, 2, {0, 0}, 1);
  const nn::Standardizer s = nn::Standardizer::fit(train);
  // Feature 0: mean 3, std sqrt(8/3); feature 1: mean 20, std sqrt(200/3).
  const double std0 = std::sqrt(8.0 / 3.0);
  const double std1 = std::sqrt(200.0 / 3.0);
  s.apply(other);
  const std::vector<double> expected = {0.0, 0.0, 4.0 / std0, -20.0 / std1};
  const std::vector<double> got = other.x.to_vector();
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 1e-5) << "element " << i;
}

TEST(Standardizer, FloorsTheStdOfConstantFeatures) {
  nn::Dataset train = make_dataset({0.5, 0.0, 0.5, 1.0}, 2, {0, 0}, 1);
  const nn::Standardizer s = nn::Standardizer::fit(train);
  EXPECT_FLOAT_EQ(s.std.data<float>()[0], static_cast<float>(nn::Standardizer::kMinStd));
  EXPECT_FLOAT_EQ(s.std.data<float>()[1], 0.5f);
  const ag::Tensor out = s.transform(ag::tensor({0.51, 0.5}, {1, 2}));
  EXPECT_NEAR(out.data<float>()[0], 0.01 / nn::Standardizer::kMinStd, 1e-3);
  EXPECT_NEAR(out.data<float>()[1], 0.0, 1e-6);
}

TEST(Standardizer, TransformReturnsANewTensorAndLeavesItsInput) {
  ag::Generator gen(2);
  const nn::Dataset train = random_dataset(50, 3, gen);
  const std::vector<double> before = train.x.to_vector();
  const ag::Tensor out = nn::Standardizer::fit(train).transform(train.x);
  EXPECT_EQ(out.shape(), train.x.shape());
  EXPECT_NE(out.impl(), train.x.impl());
  EXPECT_EQ(train.x.to_vector(), before);
}

TEST(Standardizer, RejectsDataWithAnotherFeatureCount) {
  ag::Generator gen(3);
  const nn::Standardizer s = nn::Standardizer::fit(random_dataset(10, 3, gen));
  nn::Dataset other = random_dataset(10, 4, gen);
  EXPECT_THROW(s.apply(other), std::invalid_argument);
  EXPECT_THROW(s.transform(other.x), std::invalid_argument);
  EXPECT_THROW(nn::Standardizer::fit(nn::Dataset{}), std::invalid_argument);
}

// ---- split_validation, subset, head ----

// n rows whose single feature and label are both the row index.
nn::Dataset indexed_dataset(int64_t n) {
  std::vector<double> values(static_cast<std::size_t>(n));
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  std::iota(values.begin(), values.end(), 0.0);
  std::iota(labels.begin(), labels.end(), 0);
  return make_dataset(values, 1, labels, n);
}

// The row indices a subset of indexed_dataset() holds, checking that x and y agree.
std::vector<int64_t> row_ids(const nn::Dataset& data) {
  std::vector<int64_t> ids;
  const std::vector<double> x = data.x.to_vector();
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i], data.y[i]) << "row " << i;
    ids.push_back(data.y[i]);
  }
  return ids;
}

TEST(SplitValidation, HasTheRequestedSizes) {
  ag::Generator gen(0);
  const auto [train, val] = nn::split_validation(indexed_dataset(100), 20, gen);
  EXPECT_EQ(train.size(), 80);
  EXPECT_EQ(val.size(), 20);
  EXPECT_EQ(train.y.size(), 80u);
  EXPECT_EQ(val.y.size(), 20u);
  EXPECT_EQ(val.num_classes, 100);
  EXPECT_EQ(val.name, "test");
}

TEST(SplitValidation, RowsAreDisjointAndCoverEverything) {
  ag::Generator gen(0);
  const auto [train, val] = nn::split_validation(indexed_dataset(100), 30, gen);
  std::set<int64_t> seen;
  for (const int64_t id : row_ids(train)) EXPECT_TRUE(seen.insert(id).second) << "row " << id;
  for (const int64_t id : row_ids(val)) EXPECT_TRUE(seen.insert(id).second) << "row " << id;
  EXPECT_EQ(seen.size(), 100u);
  const std::vector<int64_t> val_ids = row_ids(val);
  EXPECT_NE(val_ids, row_ids(indexed_dataset(100).head(30))) << "not the first rows";
  EXPECT_TRUE(std::is_sorted(val_ids.begin(), val_ids.end()));
}

TEST(SplitValidation, IsReproducibleWithTheSameSeed) {
  ag::Generator a(7);
  ag::Generator b(7);
  ag::Generator c(8);
  const nn::Dataset data = indexed_dataset(100);
  const std::vector<int64_t> first = row_ids(nn::split_validation(data, 10, a).second);
  EXPECT_EQ(first, row_ids(nn::split_validation(data, 10, b).second));
  EXPECT_NE(first, row_ids(nn::split_validation(data, 10, c).second));
}

TEST(SplitValidation, RejectsCountsOutsideZeroToN) {
  ag::Generator gen(0);
  const nn::Dataset data = indexed_dataset(10);
  EXPECT_THROW(nn::split_validation(data, -1, gen), std::invalid_argument);
  EXPECT_THROW(nn::split_validation(data, 10, gen), std::invalid_argument);
  EXPECT_EQ(nn::split_validation(data, 0, gen).first.size(), 10);
}

TEST(Dataset, SubsetCopiesRowsInTheGivenOrder) {
  const nn::Dataset data = make_dataset({0, 1, 10, 11, 20, 21}, 2, {5, 6, 7}, 8);
  const std::vector<int64_t> rows = {2, 0, 2};
  nn::Dataset sub = data.subset(rows);
  EXPECT_EQ(sub.x.to_vector(), (std::vector<double>{20, 21, 0, 1, 20, 21}));
  EXPECT_EQ(sub.y, (std::vector<int32_t>{7, 5, 7}));
  EXPECT_EQ(sub.num_classes, 8);
  EXPECT_EQ(sub.sample_shape, ag::Shape{2});
  sub.x.fill_(-1.0);
  EXPECT_EQ(data.x.to_vector()[0], 0.0) << "subset must copy, not share";
}

TEST(Dataset, SubsetRejectsRowsOutOfRange) {
  const nn::Dataset data = indexed_dataset(3);
  const std::vector<int64_t> past_end = {0, 3};
  const std::vector<int64_t> negative = {-1};
  EXPECT_THROW(data.subset(past_end), std::out_of_range);
  EXPECT_THROW(data.subset(negative), std::out_of_range);
}

TEST(Dataset, HeadTakesTheFirstRows) {
  const nn::Dataset data = indexed_dataset(5);
  EXPECT_EQ(row_ids(data.head(2)), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(data.head(10).size(), 5);
  EXPECT_EQ(data.head(0).size(), 0);
  EXPECT_EQ(data.head(0).features(), 1);
  EXPECT_THROW(data.head(-1), std::invalid_argument);
}

// ---- The real Fashion-MNIST ----

TEST(FashionMnist, LoadsTrainAndTestWhenInstalled) {
  const char* env = std::getenv("FASHION_MNIST_DIR");
  const fs::path dir = env ? fs::path(env) : fs::path("/usr/share/datasets/fashion-mnist");
  if (!fs::exists(dir))
    GTEST_SKIP() << "Fashion-MNIST not found at " << dir << " (set FASHION_MNIST_DIR)";
  const std::vector<std::pair<std::string, int64_t>> splits = {{"train", 60000}, {"test", 10000}};
  for (const auto& [split, rows] : splits) {
    const auto start = std::chrono::steady_clock::now();
    const nn::Dataset data = nn::load_idx_dir(dir, split);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::cout << split << ": " << data.size() << " rows in " << took.count() << " s\n";
    EXPECT_EQ(data.x.shape(), (ag::Shape{rows, 784})) << split;
    EXPECT_EQ(data.sample_shape, (ag::Shape{28, 28}));
    EXPECT_EQ(data.name, "fashion-mnist");
    const float* x = data.x.data<float>();
    const auto [lo, hi] = std::minmax_element(x, x + data.x.numel());
    EXPECT_EQ(*lo, 0.0f) << split;
    EXPECT_EQ(*hi, 1.0f) << split;
    ASSERT_EQ(data.y.size(), static_cast<std::size_t>(rows));
    std::vector<int64_t> per_class(10, 0);
    for (const int32_t label : data.y) {
      ASSERT_GE(label, 0);
      ASSERT_LT(label, 10);
      ++per_class[label];
    }
    for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], rows / 10) << split << " class " << c;
  }
}

}  // namespace
