// The C API (kiln.h): a model saved with kiln::save_model is loaded from a path and from
// memory, inspected and run through the C functions, and its outputs are compared with
// a reference computed here by hand; every error path returns its status and a message
// naming the problem, and nothing throws.
#include "kiln.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"

// Under AddressSanitizer a failed allocation returns NULL, as malloc does, instead of
// stopping the program: the tests check that Kiln reports it as an error.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace {

constexpr float w_values[6] = {0.5f, -1.0f, 0.25f, 2.0f, -0.75f, 0.125f};  // [3, 2]
constexpr float b_values[2] = {0.1f, -0.2f};

// y = x @ w + b + offset, r = relu(y); x: [batch, 3], offset: [batch, 2].
std::vector<std::uint8_t> model_bytes() {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 3});
  auto offset = g.input("offset", {kiln::batch, 2});
  auto w = g.parameter("w", kiln::Tensor::from(std::vector<float>(w_values, w_values + 6), {3, 2}));
  auto b = g.parameter("b", kiln::Tensor::from(std::vector<float>(b_values, b_values + 2), {2}));
  auto y = kiln::matmul(x, w) + b + offset;
  auto r = kiln::relu(y);
  kiln::SaveOptions opts;
  opts.inputs = {x, offset};
  opts.outputs = {y, r};
  opts.output_names = {"y", "r"};
  opts.metadata.name = "c-api-test";
  opts.metadata.version = "2.1.0";
  opts.metadata.labels = {"left", "right"};
  opts.metadata.preprocessing = {{"x", {1.0f, 2.0f, 3.0f}, {2.0f, 4.0f, 8.0f}}};
  return kiln::serialize_model(g, opts);
}

// The reference for one row, in double.
void reference(const float* x, const float* offset, double* y, double* r) {
  for (int j = 0; j < 2; ++j) {
    double s = b_values[j] + offset[j];
    for (int k = 0; k < 3; ++k) s += double(x[k]) * double(w_values[k * 2 + j]);
    y[j] = s;
    r[j] = s > 0 ? s : 0;
  }
}

bool contains(const char* haystack, const std::string& needle) {
  return std::string(haystack).find(needle) != std::string::npos;
}

#define EXPECT_STATUS(call, status, needle)                                                  \
  do {                                                                                       \
    kiln_status s_ = (call);                                                                 \
    EXPECT_EQ(s_, status) << kiln_status_name(s_) << ": " << kiln_last_error_message();      \
    EXPECT_TRUE(contains(kiln_last_error_message(), needle))                                 \
        << "message '" << kiln_last_error_message() << "' does not name '" << needle << "'"; \
  } while (0)

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = model_bytes();
    path_ = (std::filesystem::temp_directory_path() /
             ("kiln_c_api_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
              "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".kiln"))
                .string();
    std::ofstream(path_, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes_.data()), std::streamsize(bytes_.size()));
    ASSERT_EQ(kiln_model_load(path_.c_str(), &model_), KILN_OK) << kiln_last_error_message();
  }
  void TearDown() override {
    kiln_model_free(model_);
    std::filesystem::remove(path_);
  }

  kiln_tensor* f32(std::vector<int64_t> dims, const std::vector<float>& v) {
    kiln_tensor* t = nullptr;
    EXPECT_EQ(kiln_tensor_create(KILN_F32, dims.data(), dims.size(), v.data(),
                                 v.size() * sizeof(float), &t),
              KILN_OK)
        << kiln_last_error_message();
    return t;
  }

  // Runs one row (x, offset) through `m` and checks y against the reference computed for
  // `model_sees` (x as the model receives it, e.g. after the recorded preprocessing).
  void expect_one_row(kiln_model* m, const std::vector<float>& x, const std::vector<float>& off,
                      const std::vector<float>& model_sees) {
    kiln_tensor* in[2] = {f32({1, 3}, x), f32({1, 2}, off)};
    const char* names[2] = {"x", "offset"};
    kiln_tensor* out[2] = {nullptr, nullptr};
    ASSERT_EQ(kiln_model_run(m, names, in, 2, out, 2), KILN_OK) << kiln_last_error_message();
    float y[2];
    ASSERT_EQ(kiln_tensor_copy_to(out[0], y, sizeof y), KILN_OK);
    double ey[2], er[2];
    reference(model_sees.data(), off.data(), ey, er);
    EXPECT_NEAR(y[0], ey[0], 1e-5);
    EXPECT_NEAR(y[1], ey[1], 1e-5);
    for (auto* t : in) kiln_tensor_free(t);
    for (auto* t : out) kiln_tensor_free(t);
  }

  std::vector<std::uint8_t> bytes_;
  std::string path_;
  kiln_model* model_ = nullptr;
};

TEST_F(CApi, InspectsSignatures) {
  size_t n = 0;
  ASSERT_EQ(kiln_model_num_inputs(model_, &n), KILN_OK);
  EXPECT_EQ(n, 2u);
  ASSERT_EQ(kiln_model_num_outputs(model_, &n), KILN_OK);
  EXPECT_EQ(n, 2u);
  const char* name = nullptr;
  const int64_t* dims = nullptr;
  size_t rank = 0;
  kiln_dtype dtype = KILN_I64;
  ASSERT_EQ(kiln_model_input_name(model_, 1, &name), KILN_OK);
  EXPECT_STREQ(name, "offset");
  ASSERT_EQ(kiln_model_input_shape(model_, 0, &dims, &rank), KILN_OK);
  ASSERT_EQ(rank, 2u);
  EXPECT_EQ(dims[0], KILN_BATCH);
  EXPECT_EQ(dims[1], 3);
  ASSERT_EQ(kiln_model_input_dtype(model_, 0, &dtype), KILN_OK);
  EXPECT_EQ(dtype, KILN_F32);
  ASSERT_EQ(kiln_model_output_name(model_, 1, &name), KILN_OK);
  EXPECT_STREQ(name, "r");
  ASSERT_EQ(kiln_model_output_shape(model_, 0, &dims, &rank), KILN_OK);
  ASSERT_EQ(rank, 2u);
  EXPECT_EQ(dims[0], KILN_BATCH);
  EXPECT_EQ(dims[1], 2);
  ASSERT_EQ(kiln_model_output_dtype(model_, 1, &dtype), KILN_OK);
  EXPECT_EQ(dtype, KILN_F32);
  ASSERT_EQ(kiln_model_num_labels(model_, &n), KILN_OK);
  EXPECT_EQ(n, 2u);
  ASSERT_EQ(kiln_model_label(model_, 1, &name), KILN_OK);
  EXPECT_STREQ(name, "right");
  ASSERT_EQ(kiln_model_name(model_, &name), KILN_OK);
  EXPECT_STREQ(name, "c-api-test");
  ASSERT_EQ(kiln_model_version(model_, &name), KILN_OK);
  EXPECT_STREQ(name, "2.1.0");
  const float* mean = nullptr;
  const float* stddev = nullptr;
  ASSERT_EQ(kiln_model_input_normalization(model_, 0, &mean, &stddev, &n), KILN_OK);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(mean[2], 3.0f);
  EXPECT_EQ(stddev[1], 4.0f);
  ASSERT_EQ(kiln_model_input_normalization(model_, 1, &mean, &stddev, &n), KILN_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(mean, nullptr);
  EXPECT_STREQ(kiln_version(), kiln::version_string);
  EXPECT_EQ(kiln_api_version(), static_cast<uint32_t>(KILN_C_API_VERSION));
  EXPECT_GE(kiln_api_version(), 1u);
  EXPECT_STREQ(kiln_dtype_name(KILN_I32), "i32");
  EXPECT_EQ(kiln_dtype_size(KILN_F64), 8u);
  EXPECT_STREQ(kiln_status_name(KILN_ERROR_FORMAT), "KILN_ERROR_FORMAT");
  // Any int a C caller passes is answered (and, under UBSan, is no invalid enum load).
  EXPECT_STREQ(kiln_dtype_name(static_cast<kiln_dtype>(7)), "?");
  EXPECT_EQ(kiln_dtype_size(static_cast<kiln_dtype>(-1)), 0u);
  EXPECT_STREQ(kiln_status_name(static_cast<kiln_status>(42)), "KILN_ERROR_UNKNOWN");
}

TEST_F(CApi, RunsAtEveryBatchSizeAndMatchesTheReference) {
  for (int64_t batch : {1, 4, 7}) {
    std::vector<float> x(static_cast<std::size_t>(batch * 3)),
        off(static_cast<std::size_t>(batch * 2));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 11) - 5) * 0.375f;
    for (std::size_t i = 0; i < off.size(); ++i) off[i] = float(int(i % 5) - 2) * 0.5f;
    kiln_tensor* in[2] = {f32({batch, 2}, off), f32({batch, 3}, x)};
    const char* names[2] = {"offset", "x"};  // any order
    kiln_tensor* out[2] = {nullptr, nullptr};
    ASSERT_EQ(kiln_model_run(model_, names, in, 2, out, 2), KILN_OK) << kiln_last_error_message();
    const int64_t* dims = nullptr;
    size_t rank = 0, numel = 0, nbytes = 0;
    ASSERT_EQ(kiln_tensor_shape(out[0], &dims, &rank), KILN_OK);
    ASSERT_EQ(rank, 2u);
    EXPECT_EQ(dims[0], batch);
    EXPECT_EQ(dims[1], 2);
    ASSERT_EQ(kiln_tensor_numel(out[1], &numel), KILN_OK);
    EXPECT_EQ(numel, std::size_t(batch * 2));
    ASSERT_EQ(kiln_tensor_nbytes(out[1], &nbytes), KILN_OK);
    EXPECT_EQ(nbytes, numel * sizeof(float));
    const void* data = nullptr;
    ASSERT_EQ(kiln_tensor_data(out[0], &data), KILN_OK);
    std::vector<float> r(numel);
    ASSERT_EQ(kiln_tensor_copy_to(out[1], r.data(), r.size() * sizeof(float)), KILN_OK);
    for (int64_t row = 0; row < batch; ++row) {
      double ey[2], er[2];
      reference(&x[std::size_t(row * 3)], &off[std::size_t(row * 2)], ey, er);
      for (int j = 0; j < 2; ++j) {
        EXPECT_NEAR(static_cast<const float*>(data)[row * 2 + j], ey[j], 1e-5) << row;
        EXPECT_NEAR(r[std::size_t(row * 2 + j)], er[j], 1e-5) << row;
      }
    }
    for (auto* t : in) kiln_tensor_free(t);
    for (auto* t : out) kiln_tensor_free(t);
  }
}

TEST_F(CApi, LoadsFromMemoryAndTheBufferMayBeFreedAfter) {
  kiln_model* m = nullptr;
  {
    std::vector<std::uint8_t> copy = bytes_;
    ASSERT_EQ(kiln_model_load_from_memory(copy.data(), copy.size(), &m), KILN_OK)
        << kiln_last_error_message();
  }
  std::vector<float> x = {1, 2, 3}, off = {0, 0};
  expect_one_row(m, x, off, x);
  kiln_model_free(m);
}

TEST_F(CApi, LoadsWithABackendAndRejectsUnknownOnes) {
  kiln_model* m = nullptr;
  ASSERT_EQ(kiln_model_load_with_backend(path_.c_str(), "reference", &m), KILN_OK)
      << kiln_last_error_message();
  std::vector<float> x = {1, -2, 3}, off = {0.5f, 0.5f};
  expect_one_row(m, x, off, x);
  kiln_model_free(m);
  m = nullptr;
  EXPECT_STATUS(kiln_model_load_with_backend(path_.c_str(), "cuda", &m), KILN_ERROR_VALUE, "cuda");
  EXPECT_EQ(m, nullptr);
}

TEST_F(CApi, AppliesTheRecordedPreprocessingWhenAskedAndReportsTheContentHash) {
  kiln_model* m = nullptr;
  ASSERT_EQ(
      kiln_model_load_with_flags(path_.c_str(), "reference", KILN_LOAD_APPLY_PREPROCESSING, &m),
      KILN_OK)
      << kiln_last_error_message();
  // The file records x' = (x - {1, 2, 3}) / {2, 4, 8}: the model sees x' for x.
  const std::vector<float> x = {3, -2, 11}, off = {0.25f, -0.5f};
  const std::vector<float> x_normalised = {1, -1, 1};
  expect_one_row(m, x, off, x_normalised);
  const char* hash = nullptr;
  ASSERT_EQ(kiln_model_content_hash(m, &hash), KILN_OK);
  EXPECT_EQ(std::string(hash), kiln::model_content_hash(bytes_));
  EXPECT_EQ(std::string(hash).size(), 64u);
  kiln_model_free(m);
  m = nullptr;
  EXPECT_STATUS(kiln_model_load_with_flags(path_.c_str(), nullptr, 6, &m),
                KILN_ERROR_INVALID_ARGUMENT, "unknown load flags 6");
  EXPECT_EQ(m, nullptr);
  EXPECT_STATUS(kiln_model_content_hash(nullptr, &hash), KILN_ERROR_INVALID_ARGUMENT, "model");
}

TEST_F(CApi, ManyThreadsRunOneModel) {
  std::vector<float> x = {0.5f, -1.5f, 2.0f}, off = {0.25f, -0.25f};
  kiln_tensor* in[2] = {f32({1, 3}, x), f32({1, 2}, off)};
  const char* names[2] = {"x", "offset"};
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        kiln_tensor* out[2] = {nullptr, nullptr};
        if (kiln_model_run(model_, names, in, 2, out, 2) != KILN_OK) return;
        got[t].resize(2);
        kiln_tensor_copy_to(out[0], got[t].data(), 2 * sizeof(float));
        kiln_tensor_free(out[0]);
        kiln_tensor_free(out[1]);
      }
    });
  for (auto& th : threads) th.join();
  for (auto& g : got) EXPECT_EQ(g, got[0]);
  ASSERT_EQ(got[0].size(), 2u);
  for (auto* t : in) kiln_tensor_free(t);
}

TEST(CApiErrors, LoadReportsArgumentsFilesAndFormats) {
  kiln_model* m = reinterpret_cast<kiln_model*>(0x1);
  EXPECT_STATUS(kiln_model_load(nullptr, &m), KILN_ERROR_INVALID_ARGUMENT, "path");
  EXPECT_EQ(m, nullptr);
  EXPECT_STATUS(kiln_model_load("x.kiln", nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_model");
  EXPECT_STATUS(kiln_model_load("/no/such/dir/model.kiln", &m), KILN_ERROR_IO,
                "/no/such/dir/model.kiln");
  EXPECT_EQ(m, nullptr);

  const auto bad = (std::filesystem::temp_directory_path() / "kiln_c_api_bad.kiln").string();
  std::ofstream(bad, std::ios::binary) << "NOT A KILN MODEL FILE AT ALL, JUST TEXT";
  EXPECT_STATUS(kiln_model_load(bad.c_str(), &m), KILN_ERROR_FORMAT, bad);
  EXPECT_EQ(m, nullptr);
  std::filesystem::remove(bad);

  const char junk[7] = {'K', 'I', 'L', 'N', 0, 0, 0};
  EXPECT_STATUS(kiln_model_load_from_memory(junk, sizeof junk, &m), KILN_ERROR_FORMAT,
                "kiln_model_load_from_memory");
  EXPECT_STATUS(kiln_model_load_from_memory(nullptr, 10, &m), KILN_ERROR_INVALID_ARGUMENT, "data");
  EXPECT_STATUS(kiln_model_load_from_memory(junk, 0, &m), KILN_ERROR_FORMAT, "<memory>");
  EXPECT_EQ(m, nullptr);

  auto truncated = model_bytes();
  truncated.resize(truncated.size() / 2);
  EXPECT_STATUS(kiln_model_load_from_memory(truncated.data(), truncated.size(), &m),
                KILN_ERROR_FORMAT, "<memory>");
  EXPECT_EQ(m, nullptr);
  kiln_model_free(nullptr);
  kiln_tensor_free(nullptr);
  EXPECT_STATUS(kiln_model_load_with_backend(nullptr, "eigen", &m), KILN_ERROR_INVALID_ARGUMENT,
                "path");
}

TEST_F(CApi, GettersReportNullsAndIndices) {
  size_t n = 0;
  const char* name = nullptr;
  const int64_t* dims = nullptr;
  size_t rank = 0;
  kiln_dtype dtype = KILN_F32;
  EXPECT_STATUS(kiln_model_num_inputs(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT, "model");
  EXPECT_STATUS(kiln_model_num_outputs(model_, nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_count");
  EXPECT_STATUS(kiln_model_input_name(model_, 2, &name), KILN_ERROR_INVALID_ARGUMENT,
                "index 2 is out of range: the model has 2 input(s)");
  EXPECT_STATUS(kiln_model_output_name(model_, 9, &name), KILN_ERROR_INVALID_ARGUMENT,
                "2 output(s)");
  EXPECT_STATUS(kiln_model_input_name(model_, 0, nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_name");
  EXPECT_STATUS(kiln_model_input_shape(model_, 0, &dims, nullptr), KILN_ERROR_INVALID_ARGUMENT,
                "out_rank");
  EXPECT_STATUS(kiln_model_output_shape(nullptr, 0, &dims, &rank), KILN_ERROR_INVALID_ARGUMENT,
                "model");
  EXPECT_STATUS(kiln_model_output_dtype(model_, 0, nullptr), KILN_ERROR_INVALID_ARGUMENT,
                "out_dtype");
  EXPECT_STATUS(kiln_model_input_dtype(model_, 5, &dtype), KILN_ERROR_INVALID_ARGUMENT, "index 5");
  EXPECT_STATUS(kiln_model_label(model_, 2, &name), KILN_ERROR_INVALID_ARGUMENT, "2 label(s)");
  EXPECT_STATUS(kiln_model_num_labels(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT, "model");
  EXPECT_STATUS(kiln_model_name(model_, nullptr), KILN_ERROR_INVALID_ARGUMENT, "out_name");
  EXPECT_STATUS(kiln_model_version(nullptr, &name), KILN_ERROR_INVALID_ARGUMENT, "model");
  const float* mean = nullptr;
  EXPECT_STATUS(kiln_model_input_normalization(model_, 0, &mean, nullptr, &n),
                KILN_ERROR_INVALID_ARGUMENT, "out_stddev");
  EXPECT_STATUS(kiln_model_input_normalization(model_, 3, &mean, &mean, &n),
                KILN_ERROR_INVALID_ARGUMENT, "index 3");
  EXPECT_STATUS(kiln_tensor_dtype(nullptr, &dtype), KILN_ERROR_INVALID_ARGUMENT, "tensor");
  EXPECT_STATUS(kiln_tensor_shape(nullptr, &dims, &rank), KILN_ERROR_INVALID_ARGUMENT, "tensor");
  EXPECT_STATUS(kiln_tensor_numel(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT, "tensor");
  EXPECT_STATUS(kiln_tensor_nbytes(nullptr, &n), KILN_ERROR_INVALID_ARGUMENT, "tensor");
  const void* data = nullptr;
  EXPECT_STATUS(kiln_tensor_data(nullptr, &data), KILN_ERROR_INVALID_ARGUMENT, "tensor");
}

TEST(CApiErrors, TensorCreationChecksDtypeDimsAndBytes) {
  kiln_tensor* t = nullptr;
  const float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t dims[2] = {2, 3};
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, dims, 2, v, sizeof v, nullptr),
                KILN_ERROR_INVALID_ARGUMENT, "out_tensor");
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, nullptr, 2, v, sizeof v, &t),
                KILN_ERROR_INVALID_ARGUMENT, "dims");
  EXPECT_STATUS(kiln_tensor_create(static_cast<kiln_dtype>(7), dims, 2, v, sizeof v, &t),
                KILN_ERROR_DTYPE, "unknown dtype 7");
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, dims, 2, v, 20, &t), KILN_ERROR_SHAPE,
                "20 bytes given, but dims [2, 3] of f32 need 24");
  int64_t negative[2] = {2, -3};
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, negative, 2, v, sizeof v, &t), KILN_ERROR_SHAPE,
                "negative");
  int64_t huge[3] = {int64_t(1) << 40, int64_t(1) << 40, 4};
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, huge, 3, nullptr, 0, &t), KILN_ERROR_SHAPE,
                "too many elements");
  // No element, but strides that would overflow a signed 64-bit product.
  int64_t empty_but_wide[3] = {0, INT64_MAX, INT64_MAX};
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, empty_but_wide, 3, nullptr, 0, &t), KILN_ERROR_SHAPE,
                "strides overflow");
  // 2^60 f32 elements fit size_t but no machine's memory: an allocation failure.
  int64_t too_big[2] = {int64_t(1) << 40, int64_t(1) << 20};
  EXPECT_STATUS(kiln_tensor_create(KILN_F32, too_big, 2, nullptr, 0, &t), KILN_ERROR_OUT_OF_MEMORY,
                "out of memory allocating 4611686018427387904 bytes");
  EXPECT_EQ(t, nullptr);

  ASSERT_EQ(kiln_tensor_create(KILN_F32, dims, 2, v, sizeof v, &t), KILN_OK);
  float back[6] = {};
  EXPECT_STATUS(kiln_tensor_copy_to(t, back, 8), KILN_ERROR_SHAPE, "dst holds 8 bytes");
  EXPECT_STATUS(kiln_tensor_copy_to(t, nullptr, 24), KILN_ERROR_INVALID_ARGUMENT, "dst");
  ASSERT_EQ(kiln_tensor_copy_to(t, back, sizeof back), KILN_OK);
  EXPECT_EQ(back[5], 6.0f);
  kiln_tensor_free(t);

  ASSERT_EQ(kiln_tensor_create(KILN_I64, dims, 2, nullptr, 0, &t), KILN_OK);  // zeros
  int64_t zeros[6] = {1, 1, 1, 1, 1, 1};
  ASSERT_EQ(kiln_tensor_copy_to(t, zeros, sizeof zeros), KILN_OK);
  for (auto z : zeros) EXPECT_EQ(z, 0);
  kiln_dtype dtype = KILN_F32;
  ASSERT_EQ(kiln_tensor_dtype(t, &dtype), KILN_OK);
  EXPECT_EQ(dtype, KILN_I64);
  kiln_tensor_free(t);
}

TEST_F(CApi, RunReportsNamesShapesDtypesAndCounts) {
  kiln_tensor* x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  kiln_tensor* off = f32({2, 2}, {0, 0, 0, 0});
  kiln_tensor* wide = f32({2, 4}, std::vector<float>(8, 1.0f));
  kiln_tensor* flat = f32({6}, std::vector<float>(6, 1.0f));
  kiln_tensor* ints = nullptr;
  int64_t d[2] = {2, 3};
  ASSERT_EQ(kiln_tensor_create(KILN_I32, d, 2, nullptr, 0, &ints), KILN_OK);
  kiln_tensor* sentinel = reinterpret_cast<kiln_tensor*>(0x2);
  kiln_tensor* out[2] = {sentinel, sentinel};

  {
    const char* names[2] = {"x", "offset"};
    kiln_tensor* in[2] = {x, off};
    EXPECT_STATUS(kiln_model_run(nullptr, names, in, 2, out, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "model");
    EXPECT_STATUS(kiln_model_run(model_, nullptr, in, 2, out, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "input_names");
    EXPECT_STATUS(kiln_model_run(model_, names, nullptr, 2, out, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "inputs");
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, nullptr, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "outputs");
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 1), KILN_ERROR_INVALID_ARGUMENT,
                  "num_outputs is 1 but the model has 2 output(s)");
  }
  {
    const char* names[2] = {"x", nullptr};
    kiln_tensor* in[2] = {x, off};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "input_names[1] is NULL");
  }
  {
    const char* names[2] = {"x", "offset"};
    kiln_tensor* in[2] = {x, nullptr};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_INVALID_ARGUMENT,
                  "inputs[1] is NULL");
  }
  {
    const char* names[2] = {"x", "offsett"};
    kiln_tensor* in[2] = {x, off};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_NAME,
                  "'offsett' is not an input (inputs: 'x', 'offset')");
  }
  {
    const char* names[2] = {"x", "x"};
    kiln_tensor* in[2] = {x, x};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_NAME,
                  "input 'x' is fed twice");
  }
  {
    const char* names[1] = {"x"};
    kiln_tensor* in[1] = {x};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 1, out, 2), KILN_ERROR_NAME,
                  "input 'offset' is missing");
  }
  {
    const char* names[2] = {"x", "offset"};
    kiln_tensor* in[2] = {ints, off};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_DTYPE,
                  "input 'x' must be f32, got i32");
  }
  {
    const char* names[2] = {"x", "offset"};
    kiln_tensor* in[2] = {wide, off};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_SHAPE,
                  "input 'x' must have shape [batch, 3], got [2, 4]");
    in[0] = flat;
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_SHAPE, "got [6]");
  }
  {
    // Batch sizes that differ between inputs: the message names both inputs.
    kiln_tensor* off3 = f32({3, 2}, std::vector<float>(6, 0.0f));
    const char* names[2] = {"x", "offset"};
    kiln_tensor* in[2] = {x, off3};
    EXPECT_STATUS(kiln_model_run(model_, names, in, 2, out, 2), KILN_ERROR_SHAPE,
                  "inputs 'x' and 'offset' have different batch sizes (2 and 3)");
    kiln_tensor_free(off3);
  }
  EXPECT_EQ(out[0], sentinel);  // failed runs write no output
  EXPECT_EQ(out[1], sentinel);
  for (auto* t : {x, off, wide, flat, ints}) kiln_tensor_free(t);
}

// I/O binding: kiln_tensor_wrap over the app's buffers and kiln_model_run_into. The
// outputs equal kiln_model_run's bitwise; an input changed in its buffer is read from
// there at the next run (no copy was taken); errors name the output and write nothing.
TEST_F(CApi, RunIntoReadsAndWritesTheCallersBuffers) {
  const int64_t batch = 3;
  std::vector<float> x(9), off(6), y(6, -7.0f), r(6, -7.0f);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 7) - 3) * 0.5f;
  for (std::size_t i = 0; i < off.size(); ++i) off[i] = float(int(i % 3) - 1) * 0.25f;
  const int64_t xd[2] = {batch, 3}, od[2] = {batch, 2};
  kiln_tensor *wx = nullptr, *woff = nullptr, *wy = nullptr, *wr = nullptr;
  ASSERT_EQ(kiln_tensor_wrap(KILN_F32, xd, 2, x.data(), x.size() * 4, &wx), KILN_OK);
  ASSERT_EQ(kiln_tensor_wrap(KILN_F32, od, 2, off.data(), off.size() * 4, &woff), KILN_OK);
  ASSERT_EQ(kiln_tensor_wrap(KILN_F32, od, 2, y.data(), y.size() * 4, &wy), KILN_OK);
  ASSERT_EQ(kiln_tensor_wrap(KILN_F32, od, 2, r.data(), r.size() * 4, &wr), KILN_OK);
  const void* data = nullptr;
  ASSERT_EQ(kiln_tensor_data(wy, &data), KILN_OK);
  EXPECT_EQ(data, y.data());  // a view, not a copy
  const char* names[2] = {"x", "offset"};
  const kiln_tensor* in[2] = {wx, woff};
  kiln_tensor* into[2] = {wy, wr};
  for (int round = 0; round < 2; ++round) {
    if (round == 1)
      for (auto& v : x) v = -v;  // changed in place: the next run must see it
    ASSERT_EQ(kiln_model_run_into(model_, names, in, 2, into, 2), KILN_OK)
        << kiln_last_error_message();
    kiln_tensor* out[2] = {nullptr, nullptr};
    ASSERT_EQ(kiln_model_run(model_, names, in, 2, out, 2), KILN_OK);
    std::vector<float> want_y(6), want_r(6);
    ASSERT_EQ(kiln_tensor_copy_to(out[0], want_y.data(), 24), KILN_OK);
    ASSERT_EQ(kiln_tensor_copy_to(out[1], want_r.data(), 24), KILN_OK);
    EXPECT_EQ(y, want_y) << "round " << round;
    EXPECT_EQ(r, want_r) << "round " << round;
    for (int64_t row = 0; row < batch; ++row) {
      double ey[2], er[2];
      reference(&x[std::size_t(row * 3)], &off[std::size_t(row * 2)], ey, er);
      for (int j = 0; j < 2; ++j) EXPECT_NEAR(y[std::size_t(row * 2 + j)], ey[j], 1e-5);
    }
    for (auto* t : out) kiln_tensor_free(t);
  }

  // Errors: the caller's buffers keep what they held.
  const std::vector<float> kept_y = y, kept_r = r;
  std::vector<float> small(4);
  const int64_t sd[2] = {2, 2};
  kiln_tensor* wsmall = nullptr;
  ASSERT_EQ(kiln_tensor_wrap(KILN_F32, sd, 2, small.data(), 16, &wsmall), KILN_OK);
  kiln_tensor* bad_shape[2] = {wy, wsmall};
  EXPECT_STATUS(kiln_model_run_into(model_, names, in, 2, bad_shape, 2), KILN_ERROR_SHAPE,
                "output 1 ('r') has shape [3, 2] in this run, the tensor given [2, 2]");
  kiln_tensor* ints = nullptr;
  ASSERT_EQ(kiln_tensor_create(KILN_I32, od, 2, nullptr, 0, &ints), KILN_OK);
  kiln_tensor* bad_dtype[2] = {ints, wr};
  EXPECT_STATUS(kiln_model_run_into(model_, names, in, 2, bad_dtype, 2), KILN_ERROR_DTYPE,
                "output 0");
  kiln_tensor* missing[2] = {wy, nullptr};
  EXPECT_STATUS(kiln_model_run_into(model_, names, in, 2, missing, 2), KILN_ERROR_INVALID_ARGUMENT,
                "outputs[1] is NULL");
  EXPECT_STATUS(kiln_model_run_into(model_, names, in, 2, into, 1), KILN_ERROR_INVALID_ARGUMENT,
                "num_outputs is 1 but the model has 2 output(s)");
  EXPECT_STATUS(kiln_model_run_into(model_, names, in, 2, nullptr, 2), KILN_ERROR_INVALID_ARGUMENT,
                "outputs");
  EXPECT_EQ(y, kept_y);
  EXPECT_EQ(r, kept_r);

  // kiln_tensor_wrap checks its arguments as kiln_tensor_create does.
  kiln_tensor* t = reinterpret_cast<kiln_tensor*>(0x2);
  EXPECT_STATUS(kiln_tensor_wrap(KILN_F32, xd, 2, x.data(), 8, &t), KILN_ERROR_SHAPE,
                "8 bytes given, but dims [3, 3] of f32 need 36");
  EXPECT_EQ(t, nullptr);
  EXPECT_STATUS(kiln_tensor_wrap(KILN_F32, xd, 2, nullptr, 36, &t), KILN_ERROR_INVALID_ARGUMENT,
                "data");
  const int64_t negative[1] = {-1};
  EXPECT_STATUS(kiln_tensor_wrap(KILN_F32, negative, 1, x.data(), 0, &t), KILN_ERROR_SHAPE,
                "negative");
  EXPECT_STATUS(kiln_tensor_wrap(KILN_F32, xd, 2, x.data(), 36, nullptr),
                KILN_ERROR_INVALID_ARGUMENT, "out_tensor");
  for (auto* h : {wx, woff, wy, wr, wsmall, ints}) kiln_tensor_free(h);
}

TEST(CApiErrors, MessagesArePerThread) {
  kiln_model* m = nullptr;
  ASSERT_NE(kiln_model_load(nullptr, &m), KILN_OK);
  std::string mine = kiln_last_error_message();
  std::string theirs;
  std::thread([&] {
    theirs = kiln_last_error_message();  // nothing failed on this thread yet
    kiln_model_load("/no/such/file.kiln", &m);
  }).join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(kiln_last_error_message(), mine);
}

}  // namespace
