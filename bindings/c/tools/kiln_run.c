/* kiln_run MODEL [BATCH [BACKEND]]: runs a model through the C API on deterministic inputs (the
 * batch dimension set to BATCH, default 3) and prints every output element with %.9g,
 * one per line, after a header line per output; BACKEND (e.g. eigen) restricts kernels. The edge
 * check runs it on x86 and on aarch64 (under qemu) and compares the two outputs with kiln_run
 * --compare PAIRS_FILE TOLERANCE [ABS_TOLERANCE]: each line "x86_value aarch64_value"; exits 1 if
 * any pair differs by more than TOLERANCE relative and (if given) more than ABS_TOLERANCE.
 * kiln_run --monitor MODEL ROWS: runs a model holding a reference profile ("kiln.profile") through
 * a drift monitor (kiln_monitor_run, Eigen kernels) on ROWS deterministic rows in batches of 20,
 * the first 8 features shifted by +0.5, and prints per feature (and the predictions) a header line
 * and its live rows, statistic, p-value and PSI with %.17g; the edge check compares them too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#define CHECK(call)                                                                 \
  do {                                                                              \
    kiln_status s_ = (call);                                                        \
    if (s_ != KILN_OK) {                                                            \
      fprintf(stderr, "%s: %s\n", kiln_status_name(s_), kiln_last_error_message()); \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

/* Inputs that are exact in float on every machine: multiples of 1/512 in [-1, 1). */
static double pattern(size_t i) { return (double)((i * 7919u + 13u) % 1024u) / 512.0 - 1.0; }

static kiln_tensor* make_input(const kiln_model* model, size_t index, int64_t batch) {
  const int64_t* sig = NULL;
  size_t rank = 0;
  kiln_dtype dtype = KILN_F32;
  int64_t dims[8];
  size_t numel = 1, i;
  void* data;
  kiln_tensor* t = NULL;
  CHECK(kiln_model_input_shape(model, index, &sig, &rank));
  CHECK(kiln_model_input_dtype(model, index, &dtype));
  if (rank > 8) {
    fprintf(stderr, "input %zu has rank %zu (at most 8 supported)\n", index, rank);
    exit(1);
  }
  for (i = 0; i < rank; ++i) {
    dims[i] = sig[i] == KILN_BATCH ? batch : sig[i];
    numel *= (size_t)dims[i];
  }
  data = malloc(numel * kiln_dtype_size(dtype) + 1);
  if (data == NULL) exit(1);
  for (i = 0; i < numel; ++i) {
    switch (dtype) {
      case KILN_F32:
        ((float*)data)[i] = (float)pattern(i);
        break;
      case KILN_F64:
        ((double*)data)[i] = pattern(i);
        break;
      case KILN_I32:
        ((int32_t*)data)[i] = (int32_t)(i % 10u);
        break;
      case KILN_I64:
        ((int64_t*)data)[i] = (int64_t)(i % 10u);
        break;
    }
  }
  CHECK(kiln_tensor_create(dtype, dims, rank, data, numel * kiln_dtype_size(dtype), &t));
  free(data);
  return t;
}

static int compare(const char* path, double tolerance, double abs_tolerance) {
  double a = 0, b = 0, worst = 0;
  long n = 0, bad = 0;
  FILE* f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return 1;
  }
  while (fscanf(f, "%lf %lf", &a, &b) == 2) {
    double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    double rel = scale < 1e-30 ? 0.0 : fabs(a - b) / scale;
    if (rel > worst) worst = rel;
    if (rel > tolerance && fabs(a - b) > abs_tolerance) {
      if (bad < 5) printf("line %ld: %.9g vs %.9g (relative %.3g)\n", n + 1, a, b, rel);
      ++bad;
    }
    ++n;
  }
  fclose(f);
  printf("%ld values, max relative difference %.3g\n", n, worst);
  return n > 0 && bad == 0 ? 0 : 1;
}

/* The drift monitor on deterministic rows (see the top of the file). */
static int monitor(const char* path, long rows) {
  kiln_model* model = NULL;
  kiln_monitor* mon = NULL;
  const char* name = NULL;
  const int64_t* sig = NULL;
  size_t rank = 0, width, n_out = 0, i, features = 0;
  long r0;
  int drifted = 0;
  uint64_t seen = 0, observed = 0;
  kiln_monitor_options options;
  kiln_monitor_options_default(&options);
  options.sample_every = 1;
  CHECK(kiln_model_load_with_backend(path, "eigen", &model));
  CHECK(kiln_monitor_create(model, &options, &mon));
  CHECK(kiln_model_input_name(model, 0, &name));
  CHECK(kiln_model_input_shape(model, 0, &sig, &rank));
  CHECK(kiln_model_num_outputs(model, &n_out));
  if (rank != 2 || n_out != 1) {
    fprintf(stderr, "--monitor needs a model with one [batch, N] input and one output\n");
    return 1;
  }
  width = (size_t)sig[1];
  for (r0 = 0; r0 < rows; r0 += 20) {
    const int64_t batch = rows - r0 < 20 ? rows - r0 : 20;
    const int64_t dims[2] = {batch, (int64_t)width};
    float* data = malloc((size_t)batch * width * sizeof(float));
    kiln_tensor* x = NULL;
    kiln_tensor* out = NULL;
    if (data == NULL) return 1;
    for (i = 0; i < (size_t)batch * width; ++i) {
      const size_t row = (size_t)r0 + i / width, col = i % width;
      data[i] = (float)pattern(row * width + col) + (col < 8 ? 0.5f : 0.0f);
    }
    CHECK(kiln_tensor_create(KILN_F32, dims, 2, data, (size_t)batch * width * sizeof(float), &x));
    free(data);
    CHECK(kiln_monitor_run(mon, model, &name, (const kiln_tensor* const*)&x, 1, &out, 1));
    kiln_tensor_free(out);
    kiln_tensor_free(x);
  }
  CHECK(kiln_monitor_drifted(mon, &drifted));
  CHECK(kiln_monitor_counts(mon, &seen, &observed, &features));
  printf("output monitor drifted %d rows %llu %llu features %zu\n", drifted,
         (unsigned long long)seen, (unsigned long long)observed, features);
  for (i = 0; i <= features; ++i) {
    kiln_feature_drift f;
    CHECK(kiln_monitor_feature(mon, i, &f));
    printf("output feature %s %s drifted %d rows %llu\n", f.name, f.test, f.drifted,
           (unsigned long long)f.rows);
    printf("%.17g\n%.17g\n%.17g\n", f.statistic, f.p_value, f.psi);
  }
  kiln_monitor_free(mon);
  kiln_model_free(model);
  return 0;
}

int main(int argc, char** argv) {
  kiln_model* model = NULL;
  size_t n_in = 0, n_out = 0, i, j;
  int64_t batch = 3;
  const char** names;
  kiln_tensor** inputs;
  kiln_tensor** outputs;
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "--compare") == 0)
    return compare(argv[2], atof(argv[3]), argc == 5 ? atof(argv[4]) : 0.0);
  if (argc == 4 && strcmp(argv[1], "--monitor") == 0) return monitor(argv[2], atol(argv[3]));
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s MODEL.kiln [BATCH [BACKEND]]\n", argv[0]);
    return 2;
  }
  if (argc >= 3) batch = atoi(argv[2]);
  CHECK(kiln_model_load_with_backend(argv[1], argc == 4 ? argv[3] : NULL, &model));
  CHECK(kiln_model_num_inputs(model, &n_in));
  CHECK(kiln_model_num_outputs(model, &n_out));
  names = calloc(n_in + 1, sizeof *names);
  inputs = calloc(n_in + 1, sizeof *inputs);
  outputs = calloc(n_out + 1, sizeof *outputs);
  if (names == NULL || inputs == NULL || outputs == NULL) return 1;
  for (i = 0; i < n_in; ++i) {
    CHECK(kiln_model_input_name(model, i, &names[i]));
    inputs[i] = make_input(model, i, batch);
  }
  CHECK(kiln_model_run(model, names, (const kiln_tensor* const*)inputs, n_in, outputs, n_out));
  for (i = 0; i < n_out; ++i) {
    const char* name = NULL;
    const int64_t* dims = NULL;
    size_t rank = 0, numel = 0;
    kiln_dtype dtype = KILN_F32;
    const void* data = NULL;
    CHECK(kiln_model_output_name(model, i, &name));
    CHECK(kiln_tensor_shape(outputs[i], &dims, &rank));
    CHECK(kiln_tensor_dtype(outputs[i], &dtype));
    CHECK(kiln_tensor_numel(outputs[i], &numel));
    CHECK(kiln_tensor_data(outputs[i], &data));
    printf("output %s %s", name, kiln_dtype_name(dtype));
    for (j = 0; j < rank; ++j) printf(" %lld", (long long)dims[j]);
    printf("\n");
    for (j = 0; j < numel; ++j) {
      switch (dtype) {
        case KILN_F32:
          printf("%.9g\n", (double)((const float*)data)[j]);
          break;
        case KILN_F64:
          printf("%.17g\n", ((const double*)data)[j]);
          break;
        case KILN_I32:
          printf("%ld\n", (long)((const int32_t*)data)[j]);
          break;
        case KILN_I64:
          printf("%lld\n", (long long)((const int64_t*)data)[j]);
          break;
      }
    }
    kiln_tensor_free(outputs[i]);
  }
  for (i = 0; i < n_in; ++i) kiln_tensor_free(inputs[i]);
  free(names);
  free(inputs);
  free(outputs);
  kiln_model_free(model);
  return 0;
}
