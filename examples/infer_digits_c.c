/* Classifies UCI digits with the model train_digits_mlp saves, in pure C through kiln.h,
 * linking only the inference library (Kiln::kiln_infer): loads the .kiln file, prints
 * its signatures, applies the normalisation the file records to raw rows of digits.csv
 * (64 pixel columns, then the label), classifies the first 10 rows one at a time, then
 * all rows in one batch. The model reads the rows from this program's own array and writes
 * the probabilities into another (kiln_tensor_wrap and kiln_model_run_into: no copies). The
 * last line printed is accuracy=<value>; with a minimum accuracy given, exits 1 below it.
 *
 *   infer_digits_c path/to/digits_mlp.kiln [path/to/digits.csv [min_accuracy]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln.h"

#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

#define CHECK(call)                                                          \
  do {                                                                       \
    kiln_status status_ = (call);                                            \
    if (status_ != KILN_OK) {                                                \
      fprintf(stderr, "infer_digits_c: %s: %s\n", kiln_status_name(status_), \
              kiln_last_error_message());                                    \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

enum { max_rows = 4096, max_cols = 128 };

/* Reads digits.csv: a header line, then rows of numbers; returns the row count. */
static size_t read_csv(const char* path, float* values, size_t* cols) {
  char line[4096];
  size_t rows = 0;
  FILE* f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "infer_digits_c: cannot open %s\n", path);
    exit(1);
  }
  *cols = 0;
  if (fgets(line, sizeof line, f) == NULL) exit(1); /* header */
  while (rows < max_rows && fgets(line, sizeof line, f) != NULL) {
    size_t c = 0;
    char* tok = strtok(line, ",\r\n");
    while (tok != NULL && c < max_cols) {
      values[rows * max_cols + c++] = (float)atof(tok);
      tok = strtok(NULL, ",\r\n");
    }
    if (c == 0) continue;
    if (*cols == 0) *cols = c;
    if (c != *cols) {
      fprintf(stderr, "infer_digits_c: %s row %zu has %zu columns, not %zu\n", path, rows + 1, c,
              *cols);
      exit(1);
    }
    ++rows;
  }
  fclose(f);
  return rows;
}

/* Runs rows [begin, end) and writes each row's predicted class to `pred`. */
static void classify(const kiln_model* model, const float* table, size_t begin, size_t end,
                     size_t features, size_t classes, size_t* pred, float* confidence) {
  const char* input_name = NULL;
  const float* mean = NULL;
  const float* stddev = NULL;
  size_t n_norm = 0, r, c, n = end - begin;
  int64_t dims[2];
  float* x = malloc(n * features * sizeof *x);
  float* probs = malloc(n * classes * sizeof *probs);
  kiln_tensor* input = NULL;
  kiln_tensor* output = NULL;
  if (x == NULL || probs == NULL) exit(1);
  CHECK(kiln_model_input_name(model, 0, &input_name));
  CHECK(kiln_model_input_normalization(model, 0, &mean, &stddev, &n_norm));
  for (r = 0; r < n; ++r)
    for (c = 0; c < features; ++c) {
      float v = table[(begin + r) * max_cols + c];
      if (n_norm > 0) v = (v - mean[c % n_norm]) / stddev[c % n_norm];
      x[r * features + c] = v;
    }
  dims[0] = (int64_t)n;
  dims[1] = (int64_t)features;
  CHECK(kiln_tensor_wrap(KILN_F32, dims, 2, x, n * features * sizeof *x, &input));
  dims[1] = (int64_t)classes;
  CHECK(kiln_tensor_wrap(KILN_F32, dims, 2, probs, n * classes * sizeof *probs, &output));
  CHECK(kiln_model_run_into(model, &input_name, (const kiln_tensor* const*)&input, 1, &output, 1));
  for (r = 0; r < n; ++r) {
    size_t best = 0;
    for (c = 1; c < classes; ++c)
      if (probs[r * classes + c] > probs[r * classes + best]) best = c;
    pred[r] = best;
    if (confidence != NULL) confidence[r] = probs[r * classes + best];
  }
  kiln_tensor_free(input);
  kiln_tensor_free(output);
  free(x);
  free(probs);
}

int main(int argc, char** argv) {
  const char* csv = argc > 2 ? argv[2] : KILN_DIGITS_CSV;
  double min_accuracy = argc > 3 ? atof(argv[3]) : 0.0;
  kiln_model* model = NULL;
  const char *name = NULL, *version = NULL, *label = NULL;
  const int64_t* dims = NULL;
  size_t n_in = 0, n_out = 0, rank = 0, rows, cols = 0, features, classes, n_labels = 0, r;
  size_t correct = 0;
  float* table;
  size_t* pred;
  float confidence = 0;
  double accuracy;
  if (argc < 2) {
    fprintf(stderr, "usage: infer_digits_c model.kiln [digits.csv [min_accuracy]]\n");
    return 2;
  }
  CHECK(kiln_model_load(argv[1], &model));
  CHECK(kiln_model_name(model, &name));
  CHECK(kiln_model_version(model, &version));
  CHECK(kiln_model_num_inputs(model, &n_in));
  CHECK(kiln_model_num_outputs(model, &n_out));
  printf("model %s %s (Kiln %s)\n", name, version, kiln_version());
  if (n_in != 1 || n_out != 1) {
    fprintf(stderr, "infer_digits_c: expected one input and one output\n");
    return 1;
  }
  CHECK(kiln_model_input_shape(model, 0, &dims, &rank));
  if (rank != 2) {
    fprintf(stderr, "infer_digits_c: expected an input of shape [batch, features]\n");
    return 1;
  }
  features = (size_t)dims[1];
  CHECK(kiln_model_output_shape(model, 0, &dims, &rank));
  classes = (size_t)dims[rank - 1];
  CHECK(kiln_model_num_labels(model, &n_labels));

  table = malloc((size_t)max_rows * max_cols * sizeof *table);
  pred = malloc(max_rows * sizeof *pred);
  if (table == NULL || pred == NULL) return 1;
  rows = read_csv(csv, table, &cols);
  if (rows == 0 || cols != features + 1) {
    fprintf(stderr, "infer_digits_c: %s has %zu columns; the model takes %zu features + label\n",
            csv, cols, features);
    return 1;
  }

  /* One image at a time (batch 1). */
  for (r = 0; r < 10 && r < rows; ++r) {
    classify(model, table, r, r + 1, features, classes, &pred[r], &confidence);
    label = "?";
    if (pred[r] < n_labels) CHECK(kiln_model_label(model, pred[r], &label));
    printf("row %2zu: predicted %s (p=%.3f), label %g\n", r, label, (double)confidence,
           (double)table[r * max_cols + features]);
  }
  /* All rows in one batch. */
  classify(model, table, 0, rows, features, classes, pred, NULL);
  for (r = 0; r < rows; ++r)
    if ((double)pred[r] == (double)table[r * max_cols + features]) ++correct;
  accuracy = (double)correct / (double)rows;
  printf("classified %zu rows\n", rows);
  printf("accuracy=%.4f\n", accuracy);
  free(table);
  free(pred);
  kiln_model_free(model);
  if (accuracy < min_accuracy) {
    fprintf(stderr, "infer_digits_c: accuracy %.4f is below %.4f\n", accuracy, min_accuracy);
    return 1;
  }
  return 0;
}
