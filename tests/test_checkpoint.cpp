// Safetensors checkpoints: bit-identical round trips, the exact byte layout Python's loader
// expects, module save/load, refusal of truncated or lying files, and the atomic write.
#include "nn/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/module.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// Every test gets its own directory under the system temp dir, removed afterwards.
class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("ag_checkpoint_" + std::string(info->name()) + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path file(const std::string& name) const { return dir_ / name; }
  /// The names in the test directory (to spot leftover temporary files).
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_))
      names.insert(entry.path().filename().string());
    return names;
  }

  fs::path dir_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string u64_le(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

/// A safetensors file made by hand: length prefix, `header` padded to 8, then `data`.
std::string raw_file(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return u64_le(header.size()) + header + data;
}

/// The header of a saved file, parsed.
json header_of(const fs::path& path) {
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return json::parse(bytes.substr(8, n));
}

/// Success when the two tensors have the same shape, dtype and bytes; else the first difference.
::testing::AssertionResult bit_identical(const ag::Tensor& a, const ag::Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure()
           << "shape/dtype " << ag::shape_str(a.shape()) << " " << ag::dtype_name(a.dtype())
           << " vs " << ag::shape_str(b.shape()) << " " << ag::dtype_name(b.dtype());
  const std::size_t item = a.dtype() == ag::DType::Float64 ? 8 : 4;
  const void* pa = a.dtype() == ag::DType::Float64 ? static_cast<const void*>(a.data<double>())
                                                   : static_cast<const void*>(a.data<float>());
  const void* pb = b.dtype() == ag::DType::Float64 ? static_cast<const void*>(b.data<double>())
                                                   : static_cast<const void*>(b.data<float>());
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(static_cast<const char*>(pa) + i * item,
                    static_cast<const char*>(pb) + i * item, item) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << " differs: " << a.to_vector()[i] << " vs " << b.to_vector()[i];
  return ::testing::AssertionSuccess();
}

/// Values whose bits are easy to get wrong: signed zero, denormals, infinities, NaN, extremes.
template <class T>
std::vector<double> awkward_values() {
  using L = std::numeric_limits<T>;
  return {0.0,         -0.0,          1.0 / 3.0,      -L::denorm_min(), L::min(),      L::max(),
          L::lowest(), L::infinity(), -L::infinity(), L::quiet_NaN(),   3.14159265358, -2.5e-7};
}

/// Expects `f` to throw CheckpointError whose message contains every one of `parts`.
template <class F>
void expect_checkpoint_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no CheckpointError thrown";
  } catch (const nn::CheckpointError& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message lacks \"" << part << "\": " << e.what();
  }
}

/// Two Linear layers (so names get a child prefix) and a parameter of its own.
class TinyNet : public nn::Module {
 public:
  TinyNet(ag::Generator& gen, int64_t hidden = 3, ag::DType dtype = ag::DType::Float32) {
    fc1 =
        register_module("fc1", std::make_shared<nn::Linear>(2, hidden, gen, nn::Init{0.0, dtype}));
    fc2 =
        register_module("fc2", std::make_shared<nn::Linear>(hidden, 2, gen, nn::Init{0.0, dtype}));
    scale = register_parameter("scale", ag::randn({2}, gen, 1.0, dtype));
  }
  std::shared_ptr<nn::Linear> fc1, fc2;
  ag::Tensor scale;
};

// ---- round trips ----

TEST_F(Checkpoint, Float32RoundTripIsBitIdentical) {
  const ag::Tensor t = ag::tensor(awkward_values<float>(), {3, 4}, ag::DType::Float32);
  nn::save_safetensors(file("f32.safetensors"), {{"t", t}});
  const nn::Safetensors loaded = nn::load_safetensors(file("f32.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), 1u);
  EXPECT_TRUE(bit_identical(loaded.at("t"), t));
  EXPECT_FALSE(loaded.at("t").requires_grad());
  EXPECT_TRUE(loaded.at("t").is_leaf());
}

TEST_F(Checkpoint, Float64RoundTripIsBitIdentical) {
  const ag::Tensor t = ag::tensor(awkward_values<double>(), {2, 2, 3}, ag::DType::Float64);
  nn::save_safetensors(file("f64.safetensors"), {{"t", t}});
  EXPECT_TRUE(bit_identical(nn::load_safetensors(file("f64.safetensors")).at("t"), t));
}

TEST_F(Checkpoint, ScalarShapeRoundTrips) {
  const ag::Tensor s = ag::scalar(-1.25, ag::DType::Float64);
  nn::save_safetensors(file("s.safetensors"), {{"s", s}});
  EXPECT_EQ(header_of(file("s.safetensors"))["s"]["shape"], json::array());
  const ag::Tensor loaded = nn::load_safetensors(file("s.safetensors")).at("s");
  EXPECT_EQ(loaded.shape(), ag::Shape{});
  EXPECT_TRUE(bit_identical(loaded, s));
}

TEST_F(Checkpoint, ZeroElementShapesRoundTrip) {
  const nn::NamedTensors tensors = {{"a", ag::zeros({0})},
                                    {"b", ag::zeros({3, 0}, ag::DType::Float64)},
                                    {"c", ag::ones({2})},
                                    {"d", ag::zeros({0, 5})}};
  nn::save_safetensors(file("z.safetensors"), tensors);
  const nn::Safetensors loaded = nn::load_safetensors(file("z.safetensors"));
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(bit_identical(loaded.at(name), t)) << name;
}

TEST_F(Checkpoint, MetadataRoundTrips) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"epoch", "12"}, {"note", "ünïcödé, \"quotes\" and\nnewlines"}};
  nn::save_safetensors(file("m.safetensors"), {{"w", ag::ones({2})}}, metadata);
  EXPECT_EQ(nn::load_safetensors(file("m.safetensors")).metadata, metadata);
  EXPECT_EQ(header_of(file("m.safetensors"))["__metadata__"]["epoch"], "12");
}

TEST_F(Checkpoint, EmptyMetadataWritesNoMetadataEntry) {
  nn::save_safetensors(file("m.safetensors"), {{"w", ag::ones({2})}});
  EXPECT_FALSE(header_of(file("m.safetensors")).contains("__metadata__"));
  EXPECT_TRUE(nn::load_safetensors(file("m.safetensors")).metadata.empty());
}

TEST_F(Checkpoint, NoTensorsRoundTrips) {
  nn::save_safetensors(file("e.safetensors"), {});
  EXPECT_EQ(read_bytes(file("e.safetensors")), u64_le(8) + "{}      ");
  EXPECT_TRUE(nn::load_safetensors(file("e.safetensors")).tensors.empty());
}

// ---- the byte layout ----

TEST_F(Checkpoint, HeaderIsPaddedTo8BytesAndDescribesTheData) {
  const ag::Tensor w = ag::tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  const ag::Tensor b = ag::tensor({7, 8, 9}, {3});
  nn::save_safetensors(file("h.safetensors"), {{"w", w}, {"b", b}});
  const std::string bytes = read_bytes(file("h.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  ASSERT_EQ(bytes.size(), 8 + n + 9 * 4);

  const json header = json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["b"], json::parse(R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})"));
  EXPECT_EQ(header["w"], json::parse(R"({"dtype":"F32","shape":[2,3],"data_offsets":[12,36]})"));
  float w0 = 0.0f, b2 = 0.0f;
  std::memcpy(&b2, bytes.data() + 8 + n + 2 * 4, 4);
  std::memcpy(&w0, bytes.data() + 8 + n + 12, 4);
  EXPECT_EQ(b2, 9.0f);
  EXPECT_EQ(w0, 1.0f);
}

TEST_F(Checkpoint, TensorsAreLaidOutSortedByName) {
  nn::save_safetensors(file("o.safetensors"), {{"zeta", ag::ones({1})},
                                               {"alpha", ag::ones({2})},
                                               {"mid.b", ag::ones({3})},
                                               {"mid.a", ag::ones({4})}});
  const json header = header_of(file("o.safetensors"));
  uint64_t expected_begin = 0;
  for (const char* name : {"alpha", "mid.a", "mid.b", "zeta"}) {
    EXPECT_EQ(header[name]["data_offsets"][0], expected_begin) << name;
    expected_begin = header[name]["data_offsets"][1];
  }
  // Loading hands them back sorted by name too.
  const nn::Safetensors loaded = nn::load_safetensors(file("o.safetensors"));
  std::vector<std::string> names;
  for (const auto& [name, t] : loaded.tensors) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "mid.a", "mid.b", "zeta"}));
}

TEST_F(Checkpoint, Float64TensorsComeFirstSoEveryTensorIsAligned) {
  // As the Python library does: descending item size, then name.
  nn::save_safetensors(file("a.safetensors"), {{"a", ag::ones({3})},
                                               {"b", ag::ones({2}, ag::DType::Float64)},
                                               {"c", ag::ones({1}, ag::DType::Float64)}});
  const json header = header_of(file("a.safetensors"));
  EXPECT_EQ(header["b"]["data_offsets"], json::array({0, 16}));
  EXPECT_EQ(header["c"]["data_offsets"], json::array({16, 24}));
  EXPECT_EQ(header["a"]["data_offsets"], json::array({24, 36}));
}

TEST_F(Checkpoint, SaveRejectsBadNames) {
  EXPECT_THROW(nn::save_safetensors(file("x"), {{"", ag::ones({1})}}), std::invalid_argument);
  EXPECT_THROW(nn::save_safetensors(file("x"), {{"w", ag::ones({1})}, {"w", ag::ones({2})}}),
               std::invalid_argument);
  EXPECT_THROW(nn::save_safetensors(
                   file("x"), {{"w", ag::ones({1})}, {"w", ag::ones({1}, ag::DType::Float64)}}),
               std::invalid_argument);
  EXPECT_THROW(nn::save_safetensors(file("x"), {{"__metadata__", ag::ones({1})}}),
               std::invalid_argument);
  EXPECT_THROW(nn::save_safetensors(file("x"), {{"w", ag::Tensor()}}), std::invalid_argument);
  EXPECT_THROW(nn::save_safetensors(file("x"), {{"\xff", ag::ones({1})}}), std::invalid_argument);
  EXPECT_TRUE(listing().empty());
}

TEST_F(Checkpoint, AtNamesTheMissingTensorAndThosePresent) {
  nn::save_safetensors(file("t.safetensors"), {{"weight", ag::ones({1})}, {"bias", ag::ones({1})}});
  const nn::Safetensors loaded = nn::load_safetensors(file("t.safetensors"));
  try {
    loaded.at("input_mean");
    FAIL() << "no exception";
  } catch (const std::out_of_range& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'input_mean'"), std::string::npos) << what;
    EXPECT_NE(what.find("'weight'"), std::string::npos) << what;
    EXPECT_NE(what.find("'bias'"), std::string::npos) << what;
  }
}

// ---- modules ----

TEST_F(Checkpoint, ModuleRoundTripIsBitIdenticalAndKeepsExtras) {
  ag::Generator gen(1);
  const TinyNet saved(gen);
  const ag::Tensor mean = ag::tensor({0.5, -0.25}, {2});
  nn::save(saved, file("net.safetensors"), {{"input_mean", mean}}, {{"epochs", "3"}});

  ag::Generator other(2);
  TinyNet restored(other);
  const nn::Safetensors extras = nn::load(restored, file("net.safetensors"));
  const nn::NamedTensors a = saved.named_parameters(), b = restored.named_parameters();
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(bit_identical(a[i].second, b[i].second)) << a[i].first;
    EXPECT_TRUE(b[i].second.requires_grad()) << b[i].first;
  }
  EXPECT_TRUE(bit_identical(extras.at("input_mean"), mean));
  EXPECT_EQ(extras.metadata.at("epochs"), "3");
  EXPECT_TRUE(bit_identical(extras.at("fc1.weight"), saved.fc1->weight));
}

TEST_F(Checkpoint, ModuleLoadWritesIntoTheExistingParameterStorage) {
  ag::Generator gen(1);
  const TinyNet saved(gen);
  nn::save(saved, file("net.safetensors"));
  ag::Generator other(2);
  TinyNet restored(other);
  const std::vector<ag::Tensor> held = restored.parameters();  // as an optimizer holds them
  const float* storage = restored.fc1->weight.data<float>();
  nn::load(restored, file("net.safetensors"));
  EXPECT_EQ(restored.fc1->weight.data<float>(), storage);
  const std::vector<ag::Tensor> expected = saved.parameters();
  ASSERT_EQ(held.size(), expected.size());
  for (std::size_t i = 0; i < held.size(); ++i) EXPECT_TRUE(bit_identical(held[i], expected[i]));
}

TEST_F(Checkpoint, ModuleLoadConvertsTheDtype) {
  ag::Generator gen(1);
  const TinyNet saved(gen, 3, ag::DType::Float64);
  nn::save(saved, file("net.safetensors"));
  ag::Generator other(2);
  TinyNet restored(other, 3, ag::DType::Float32);
  nn::load(restored, file("net.safetensors"));
  EXPECT_EQ(restored.fc2->weight.dtype(), ag::DType::Float32);
  EXPECT_TRUE(bit_identical(restored.fc2->weight, saved.fc2->weight.to(ag::DType::Float32)));
}

TEST_F(Checkpoint, ModuleLoadRefusesAFloat64ValueBeyondFloat32sRange) {
  ag::Generator gen(1);
  TinyNet saved(gen, 3, ag::DType::Float64);
  saved.fc2->weight.data<double>()[1] = -1e300;
  nn::save(saved, file("net.safetensors"));
  ag::Generator other(2);
  TinyNet restored(other, 3, ag::DType::Float32);
  const ag::Tensor before = restored.fc1->weight.clone();
  expect_checkpoint_error([&] { nn::load(restored, file("net.safetensors")); },
                          {"'fc2.weight'", "element 1", "-1e+300", "float32"});
  EXPECT_TRUE(bit_identical(restored.fc1->weight, before));  // nothing was copied

  // Largest float32 itself converts exactly; infinity is a value like any other.
  saved.fc2->weight.data<double>()[1] = double(std::numeric_limits<float>::max());
  saved.fc2->weight.data<double>()[2] = -std::numeric_limits<double>::infinity();
  nn::save(saved, file("net.safetensors"));
  nn::load(restored, file("net.safetensors"));
  EXPECT_EQ(restored.fc2->weight.data<float>()[1], std::numeric_limits<float>::max());
  EXPECT_EQ(restored.fc2->weight.data<float>()[2], -std::numeric_limits<float>::infinity());
}

TEST_F(Checkpoint, ModuleSaveRejectsAnExtraNamedLikeAParameter) {
  ag::Generator gen(1);
  const TinyNet net(gen);
  EXPECT_THROW(nn::save(net, file("net.safetensors"), {{"scale", ag::ones({2})}}),
               std::invalid_argument);
}

TEST_F(Checkpoint, ModuleLoadRejectsAMismatchedShapeNamingParameterAndShapes) {
  ag::Generator gen(1);
  nn::save(TinyNet(gen, 4), file("net.safetensors"));
  TinyNet restored(gen, 3);
  const ag::Tensor before = restored.scale.clone();
  expect_checkpoint_error([&] { nn::load(restored, file("net.safetensors")); },
                          {"'fc1.weight'", "[2, 3]", "[2, 4]", "net.safetensors"});
  EXPECT_TRUE(bit_identical(restored.scale, before));  // nothing was copied
}

TEST_F(Checkpoint, ModuleLoadRejectsAMissingParameter) {
  ag::Generator gen(1);
  const TinyNet net(gen);
  nn::NamedTensors some = net.named_parameters();
  some.pop_back();  // drop "fc2.bias"
  nn::save_safetensors(file("net.safetensors"), some);
  TinyNet restored(gen);
  expect_checkpoint_error([&] { nn::load(restored, file("net.safetensors")); },
                          {"'fc2.bias'", "missing"});
}

// ---- refusing bad files ----

TEST_F(Checkpoint, TruncatedFileIsRefusedWhereverItIsCut) {
  nn::save_safetensors(file("full.safetensors"),
                       {{"w", ag::ones({4, 4})}, {"b", ag::ones({3}, ag::DType::Float64)}});
  const std::string bytes = read_bytes(file("full.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::size_t data = 8 + n;
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{7}, std::size_t{8},
                          std::size_t{12}, data - 1, data, data + 4, data + 24, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_bytes(file("cut.safetensors"), bytes.substr(0, cut));
    EXPECT_THROW(nn::load_safetensors(file("cut.safetensors")), nn::CheckpointError);
  }
  // Cut inside the data, the message gives the expected and the actual size.
  write_bytes(file("cut.safetensors"), bytes.substr(0, bytes.size() - 5));
  expect_checkpoint_error(
      [&] { nn::load_safetensors(file("cut.safetensors")); },
      {std::to_string(bytes.size()), std::to_string(bytes.size() - 5), "truncated"});
}

TEST_F(Checkpoint, TrailingBytesAfterTheDataAreRefused) {
  nn::save_safetensors(file("t.safetensors"), {{"w", ag::ones({2})}});
  write_bytes(file("t.safetensors"), read_bytes(file("t.safetensors")) + "junk");
  expect_checkpoint_error([&] { nn::load_safetensors(file("t.safetensors")); },
                          {"4 bytes after the last tensor"});
}

TEST_F(Checkpoint, HeaderLengthOfOneTerabyteIsRefusedQuickly) {
  write_bytes(file("big.safetensors"), u64_le(uint64_t{1} << 40) + "{}      ");
  const auto start = std::chrono::steady_clock::now();
  expect_checkpoint_error([&] { nn::load_safetensors(file("big.safetensors")); },
                          {"header length 1099511627776", "at byte 0"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(Checkpoint, HeaderThatIsNotJsonIsRefused) {
  write_bytes(file("j.safetensors"), raw_file(R"({"w": {"dtype": "F32",)", ""));
  expect_checkpoint_error([&] { nn::load_safetensors(file("j.safetensors")); }, {"not valid JSON"});
}

TEST_F(Checkpoint, HeaderThatIsNotAnObjectIsRefused) {
  write_bytes(file("j.safetensors"), raw_file("[1, 2, 3]", ""));
  expect_checkpoint_error([&] { nn::load_safetensors(file("j.safetensors")); },
                          {"must be a JSON object", "not a JSON array"});
}

TEST_F(Checkpoint, UnknownDtypeIsRefusedByName) {
  write_bytes(file("d.safetensors"),
              raw_file(R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", "abcd"));
  expect_checkpoint_error([&] { nn::load_safetensors(file("d.safetensors")); },
                          {"'w'", "BF16", "F32 and F64"});
}

TEST_F(Checkpoint, OverlappingOffsetsAreRefused) {
  write_bytes(file("o.safetensors"),
              raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       std::string(12, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("o.safetensors")); },
                          {"'b'", "overlaps", "'a'"});
}

TEST_F(Checkpoint, OffsetsBeyondTheDataAreRefused) {
  write_bytes(file("r.safetensors"),
              raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[1000000],"data_offsets":[8,4000008]}})",
                       std::string(12, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("r.safetensors")); },
                          {"'b'", "4000008", "past the end"});
}

TEST_F(Checkpoint, GapBetweenTensorsIsRefused) {
  write_bytes(file("g.safetensors"),
              raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                       std::string(12, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("g.safetensors")); },
                          {"[4, 8)", "belong to no tensor"});
}

TEST_F(Checkpoint, ShapeDisagreeingWithOffsetsIsRefused) {
  write_bytes(file("s.safetensors"),
              raw_file(R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,24]}})",
                       std::string(24, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("s.safetensors")); },
                          {"'w'", "needs 48 bytes", "span 24"});
}

TEST_F(Checkpoint, OverflowingShapeIsRefused) {
  // 2^32 * 2^32 elements wrap to 0 in 64 bits; a careless check would accept [0, 0].
  write_bytes(file("v.safetensors"),
              raw_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                       R"("data_offsets":[0,0]}})",
                       ""));
  expect_checkpoint_error([&] { nn::load_safetensors(file("v.safetensors")); },
                          {"'w'", "overflows"});
}

TEST_F(Checkpoint, NegativeOrFractionalShapeIsRefused) {
  for (const char* shape : {"[-1]", "[1.5]", "[\"2\"]", "2"}) {
    SCOPED_TRACE(shape);
    write_bytes(file("n.safetensors"), raw_file(std::string(R"({"w":{"dtype":"F32","shape":)") +
                                                    shape + R"(,"data_offsets":[0,4]}})",
                                                std::string(4, '\0')));
    expect_checkpoint_error([&] { nn::load_safetensors(file("n.safetensors")); },
                            {"'w'", "non-negative integers"});
  }
}

TEST_F(Checkpoint, MissingFieldOrBadMetadataIsRefused) {
  write_bytes(file("f.safetensors"), raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"));
  expect_checkpoint_error([&] { nn::load_safetensors(file("f.safetensors")); },
                          {"'w'", "data_offsets"});
  write_bytes(file("f.safetensors"), raw_file(R"({"__metadata__":{"epoch":3}})", ""));
  expect_checkpoint_error([&] { nn::load_safetensors(file("f.safetensors")); },
                          {"__metadata__", "strings"});
}

// Found by fuzz_safetensors: nlohmann::json reports a number beyond double's range with an
// out_of_range exception, not a parse_error, which escaped load_safetensors.
TEST_F(Checkpoint, HeaderWithANumberTooLargeForADoubleIsRefused) {
  write_bytes(file("n.safetensors"), raw_file(R"({"w":{"dtype":"F32","shape":[1e400],)"
                                              R"("data_offsets":[0,4]}})",
                                              std::string(4, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("n.safetensors")); },
                          {"n.safetensors", "1e400"});
}

// Found by fuzz_safetensors: load accepted a tensor named "", which save_safetensors then refused,
// so a file could be loaded but not saved back.
TEST_F(Checkpoint, EmptyTensorNameIsRefusedAsSaveRefusesIt) {
  write_bytes(
      file("e.safetensors"),
      raw_file(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  expect_checkpoint_error([&] { nn::load_safetensors(file("e.safetensors")); },
                          {"e.safetensors", "name must not be empty"});
}

// Nested arrays 200,000 deep: printing one in an error message (or any recursion over it) would
// overflow the stack, so the header's nesting is limited while it is parsed.
TEST_F(Checkpoint, DeeplyNestedHeaderIsRefusedWithoutRecursion) {
  constexpr std::size_t kDepth = 200000;
  for (const std::string& header : {std::string(kDepth, '[') + std::string(kDepth, ']'),
                                    R"({"w":{"dtype":"F32","shape":)" + std::string(kDepth, '[') +
                                        std::string(kDepth, ']') + R"(,"data_offsets":[0,4]}})"}) {
    write_bytes(file("d.safetensors"), raw_file(header, std::string(4, '\0')));
    expect_checkpoint_error([&] { nn::load_safetensors(file("d.safetensors")); },
                            {"d.safetensors", "nests arrays or objects more than 8 deep"});
  }
}

TEST_F(Checkpoint, LoadingAMissingFileNamesIt) {
  try {
    nn::load_safetensors(file("absent.safetensors"));
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.safetensors"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

// ---- the atomic write ----

TEST_F(Checkpoint, SaveReplacesAnExistingFileAndLeavesNoTemporaryFile) {
  write_bytes(file("c.safetensors"), "old contents");
  nn::save_safetensors(file("c.safetensors"), {{"w", ag::ones({2})}});
  EXPECT_EQ(listing(), std::set<std::string>{"c.safetensors"});
  EXPECT_TRUE(bit_identical(nn::load_safetensors(file("c.safetensors")).at("w"), ag::ones({2})));
}

// The saved file gets the permissions of any new file, 0666 less the umask, however its
// temporary file was made (an unnamed O_TMPFILE one here, where the filesystem has it).
TEST_F(Checkpoint, SavedFileHasTheUsualPermissions) {
  for (const mode_t mask : {mode_t{022}, mode_t{077}, mode_t{002}}) {
    const mode_t saved_mask = ::umask(mask);
    nn::save_safetensors(file("c.safetensors"), {{"w", ag::ones({2})}});
    nn::write_file_atomically(file("c.txt"), "text");
    ::umask(saved_mask);
    struct stat st {};
    ASSERT_EQ(::stat(file("c.safetensors").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask) << "umask " << std::oct << mask;
    ASSERT_EQ(::stat(file("c.txt").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask) << "umask " << std::oct << mask;
  }
}

TEST_F(Checkpoint, SaveIntoAMissingDirectoryThrowsNamingPathAndError) {
  const fs::path target = file("no_such_dir") / "c.safetensors";
  try {
    nn::save_safetensors(target, {{"w", ag::ones({2})}});
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find(target.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(Checkpoint, SaveUnderARegularFileThrowsAndLeavesItUntouched) {
  write_bytes(file("plain"), "not a directory");
  EXPECT_THROW(nn::save_safetensors(file("plain") / "c.safetensors", {{"w", ag::ones({2})}}),
               std::system_error);
  EXPECT_EQ(read_bytes(file("plain")), "not a directory");
  EXPECT_EQ(listing(), std::set<std::string>{"plain"});
}

TEST_F(Checkpoint, FailedRenameRemovesTheTemporaryFile) {
  // Renaming a file onto a non-empty directory fails after all the data has been written.
  fs::create_directories(file("c.safetensors") / "inside");
  EXPECT_THROW(nn::save_safetensors(file("c.safetensors"), {{"w", ag::ones({2})}}),
               std::system_error);
  EXPECT_EQ(listing(), std::set<std::string>{"c.safetensors"});
  EXPECT_TRUE(fs::is_directory(file("c.safetensors")));
}

TEST_F(Checkpoint, WriteFileAtomicallyReplacesTheWholeFile) {
  nn::write_file_atomically(file("a.txt"), "first version, longer");
  nn::write_file_atomically(file("a.txt"), "second");
  EXPECT_EQ(read_bytes(file("a.txt")), "second");
  EXPECT_EQ(listing(), std::set<std::string>{"a.txt"});
}

TEST_F(Checkpoint, WriteFileAtomicallyFailureNamesThePathAndLeavesNoTemporaryFile) {
  fs::create_directories(file("out.json") / "inside");
  try {
    nn::write_file_atomically(file("out.json"), "{}");
    FAIL() << "expected std::system_error";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("out.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(listing(), std::set<std::string>{"out.json"});
}

TEST_F(Checkpoint, FailedWriteKeepsTheOriginalAndRemovesTheTemporaryFile) {
  // A file size limit makes write() fail part way (EFBIG), as a full disk would (ENOSPC).
  nn::save_safetensors(file("c.safetensors"), {{"w", ag::ones({2})}});
  const std::string original = read_bytes(file("c.safetensors"));

  rlimit saved_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved_limit), 0);
  rlimit small = saved_limit;
  small.rlim_cur = 4096;
  const auto saved_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string what;
  try {
    nn::save_safetensors(file("c.safetensors"), {{"w", ag::ones({64, 64})}});
  } catch (const std::system_error& e) {
    what = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved_limit);
  std::signal(SIGXFSZ, saved_handler);

  EXPECT_NE(what.find("File too large"), std::string::npos) << "message: " << what;
  EXPECT_NE(what.find("c.safetensors"), std::string::npos) << "message: " << what;
  EXPECT_EQ(read_bytes(file("c.safetensors")), original);
  EXPECT_EQ(listing(), std::set<std::string>{"c.safetensors"});
}

}  // namespace
