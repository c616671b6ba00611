/* kiln.h — Kiln's C API: load a .kiln model file, inspect its input and output
 * signatures, create tensors, run the model and read its outputs.
 *
 * Every function that can fail returns a kiln_status; on failure,
 * kiln_last_error_message() (per thread) says what went wrong, naming the file, input
 * or value. No C++ exception ever crosses this boundary. Objects are opaque handles that
 * the caller frees with kiln_model_free / kiln_tensor_free (both accept NULL).
 *
 * Compiles as C99 and as C++; the symbols live in the kiln_infer library.
 *
 * Versions: KILN_C_API_VERSION is the version of this header, kiln_api_version() that of
 * the library in use. The number grows by one whenever a function or enum value is
 * added; within one major version of the library nothing is removed and no function
 * changes its signature or meaning. A program built against version N works with any
 * library reporting N or more; check kiln_api_version() >= KILN_C_API_VERSION at start-up
 * when the library may be older than the header.
 *
 * Threads: kiln_model_run may be called on one model from many threads at once, and every
 * other call that only reads a model or a tensor (const pointers) may run beside it.
 * kiln_model_free may be called while runs of the model are in flight on other threads:
 * each run holds a share of the model, finishes normally, and the model's memory is
 * released when the last one returns. No call may start with a model handle after
 * kiln_model_free was called on it, and kiln_tensor_free must not race with any other use
 * of the same tensor. Error messages are per thread.
 *
 * Memory: a model compiles one plan per batch size it is run with and keeps at most 8 of
 * them per concurrent run (least recently used evicted), holding at most 512 MiB of
 * intermediate buffers per concurrent run; a larger batch's buffers are released when its
 * run returns. Any batch size is accepted, 0 included. */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/export.hpp" /* KILN_API: plain preprocessor, valid C */

/** The C API version this header declares (see "Versions" above). */
#define KILN_C_API_VERSION 4
/* Version 2 added kiln_model_load_with_flags, KILN_LOAD_APPLY_PREPROCESSING and
 * kiln_model_content_hash. Version 3 added the drift monitor (kiln_monitor_*). */

#ifdef __cplusplus
extern "C" {
#endif

/* In C++ the enums get int as their fixed underlying type, so any int a C caller passes
 * (an unknown dtype, say) is a value of the type and gets an error, never undefined
 * behaviour; C passes them as int either way. */
#ifdef __cplusplus
#define KILN_ENUM_BASE : int
#else
#define KILN_ENUM_BASE
#endif

/** What a call returned. Every code but KILN_OK comes with kiln_last_error_message(). */
typedef enum kiln_status KILN_ENUM_BASE {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1, /**< a NULL pointer, an index out of range, ... */
  KILN_ERROR_IO = 2,               /**< a file that cannot be read */
  KILN_ERROR_FORMAT = 3,           /**< a malformed model file or buffer */
  KILN_ERROR_SHAPE = 4,            /**< shapes or sizes that do not fit */
  KILN_ERROR_DTYPE = 5,            /**< a tensor of the wrong element type */
  KILN_ERROR_NAME = 6,             /**< an unknown, missing or repeated input name */
  KILN_ERROR_VALUE = 7,            /**< any other value Kiln does not accept */
  KILN_ERROR_OUT_OF_MEMORY = 8,
  KILN_ERROR_INTERNAL = 9 /**< a bug in Kiln: please report the message */
} kiln_status;

/** Element types; the values match kiln::DType. */
typedef enum kiln_dtype KILN_ENUM_BASE {
  KILN_F32 = 0,
  KILN_I32 = 1,
  KILN_I64 = 2,
  KILN_F64 = 3
} kiln_dtype;

/** The dimension of a signature that is only known at run time (the batch). */
#define KILN_BATCH ((int64_t)-1)

typedef struct kiln_model kiln_model;
typedef struct kiln_tensor kiln_tensor;

/** The message of the last failed call on this thread ("" if none). Valid until the next
 *  failing call on this thread. */
KILN_API const char* kiln_last_error_message(void);
/** "KILN_OK", "KILN_ERROR_FORMAT", ... */
KILN_API const char* kiln_status_name(kiln_status status);
/** "f32", "i32", "i64", "f64" ("?" for anything else). */
KILN_API const char* kiln_dtype_name(kiln_dtype dtype);
/** Bytes per element (0 for an unknown dtype). */
KILN_API size_t kiln_dtype_size(kiln_dtype dtype);
/** The library's version, e.g. "0.1.0". */
KILN_API const char* kiln_version(void);
/** The C API version the library implements (see KILN_C_API_VERSION). */
KILN_API uint32_t kiln_api_version(void);

/* ---- Models ---------------------------------------------------------------------- */

/** Loads and validates a model file. */
KILN_API kiln_status kiln_model_load(const char* path, kiln_model** out_model);
/** As kiln_model_load, with kernels restricted to one backend: "onednn", "eigen" or
 *  "reference" (NULL or "": the best available). The model is compiled for batch size 1
 *  at load, so a backend that cannot run it fails here (KILN_ERROR_VALUE naming the
 *  node), not at the first run. */
KILN_API kiln_status kiln_model_load_with_backend(const char* path, const char* backend,
                                                  kiln_model** out_model);
/** Load flags for kiln_model_load_with_flags (bitwise or; unknown bits are an error). */
/** run applies the preprocessing the file records (x' = (x - mean) / stddev along the last
 *  axis of each named input, see kiln_model_input_normalization) before the model sees
 *  the inputs; load fails if an entry cannot apply to its input. */
#define KILN_LOAD_APPLY_PREPROCESSING 1u
/** As kiln_model_load_with_backend, with KILN_LOAD_* flags (0: as kiln_model_load). */
KILN_API kiln_status kiln_model_load_with_flags(const char* path, const char* backend,
                                                uint32_t flags, kiln_model** out_model);
/** Loads a model from `size` bytes at `data` (copied: the buffer may be freed after). */
KILN_API kiln_status kiln_model_load_from_memory(const void* data, size_t size,
                                                 kiln_model** out_model);
KILN_API void kiln_model_free(kiln_model* model);

KILN_API kiln_status kiln_model_num_inputs(const kiln_model* model, size_t* out_count);
KILN_API kiln_status kiln_model_num_outputs(const kiln_model* model, size_t* out_count);
/** The name of input `index`; the string lives as long as the model. */
KILN_API kiln_status kiln_model_input_name(const kiln_model* model, size_t index,
                                           const char** out_name);
KILN_API kiln_status kiln_model_input_dtype(const kiln_model* model, size_t index,
                                            kiln_dtype* out_dtype);
/** The signature's dims (KILN_BATCH for the batch dimension); they live as long as the
 *  model. */
KILN_API kiln_status kiln_model_input_shape(const kiln_model* model, size_t index,
                                            const int64_t** out_dims, size_t* out_rank);
KILN_API kiln_status kiln_model_output_name(const kiln_model* model, size_t index,
                                            const char** out_name);
KILN_API kiln_status kiln_model_output_dtype(const kiln_model* model, size_t index,
                                             kiln_dtype* out_dtype);
KILN_API kiln_status kiln_model_output_shape(const kiln_model* model, size_t index,
                                             const int64_t** out_dims, size_t* out_rank);
/** Number of class labels stored with the model, and label `index` (lives with the model). */
KILN_API kiln_status kiln_model_num_labels(const kiln_model* model, size_t* out_count);
KILN_API kiln_status kiln_model_label(const kiln_model* model, size_t index,
                                      const char** out_label);

/** The model's name and semantic version (metadata); they live as long as the model. */
KILN_API kiln_status kiln_model_name(const kiln_model* model, const char** out_name);
KILN_API kiln_status kiln_model_version(const kiln_model* model, const char** out_version);
/** The model's content hash: 64 lowercase hex digits of a SHA-256 over everything in the
 *  file but its creation time and library version ("" for a format version 1 file); it
 *  lives as long as the model. */
KILN_API kiln_status kiln_model_content_hash(const kiln_model* model, const char** out_hash);
/** The normalisation the model expects on input `index`, x' = (x - mean) / stddev along
 *  the last axis: `*out_count` values each (0 and NULLs when the file records none). The
 *  caller applies it, unless the model was loaded with KILN_LOAD_APPLY_PREPROCESSING; the
 *  arrays live as long as the model. */
KILN_API kiln_status kiln_model_input_normalization(const kiln_model* model, size_t index,
                                                    const float** out_mean,
                                                    const float** out_stddev, size_t* out_count);

/** Runs the model. `input_names[i]` names `inputs[i]`; every model input must be given
 *  exactly once, with the signature's dtype and dims (any size of at least 1 for
 *  KILN_BATCH, the same in every input).
 *  `outputs` receives `num_outputs` (= kiln_model_num_outputs) new tensors in signature
 *  order, which the caller frees. On failure no output is written. */
KILN_API kiln_status kiln_model_run(const kiln_model* model, const char* const* input_names,
                                    const kiln_tensor* const* inputs, size_t num_inputs,
                                    kiln_tensor** outputs, size_t num_outputs);

/** Runs the model into tensors the caller made (I/O binding, like ONNX Runtime's): with
 *  kiln_tensor_wrap over the app's own buffers, made once and reused from run to run, no
 *  input or output is allocated or copied per run. `outputs[i]` must have output i's dtype
 *  and the dims this run gives it (the signature's, with the batch size of the inputs);
 *  otherwise KILN_ERROR_DTYPE / KILN_ERROR_SHAPE names the output and nothing runs. An
 *  output is written straight into a 64-byte aligned buffer by the step that computes it
 *  when it can, and copied into it otherwise. Since API version 4. */
KILN_API kiln_status kiln_model_run_into(const kiln_model* model, const char* const* input_names,
                                         const kiln_tensor* const* inputs, size_t num_inputs,
                                         kiln_tensor* const* outputs, size_t num_outputs);

/* ---- Tensors --------------------------------------------------------------------- */

/** A new contiguous tensor of `dtype` and `dims` (all >= 0) holding a copy of `nbytes`
 *  bytes at `data`, which must be exactly numel * kiln_dtype_size(dtype). `data` may be
 *  NULL (with any nbytes) for a zero-filled tensor. */
KILN_API kiln_status kiln_tensor_create(kiln_dtype dtype, const int64_t* dims, size_t rank,
                                        const void* data, size_t nbytes, kiln_tensor** out_tensor);
/** A tensor over the caller's memory, without a copy: `data` holds exactly `nbytes` =
 *  numel * kiln_dtype_size(dtype) bytes, row-major, and must outlive the tensor (and any
 *  run using it). Reading it as an input reads `data`; kiln_model_run_into writes outputs
 *  into it. Since API version 4. */
KILN_API kiln_status kiln_tensor_wrap(kiln_dtype dtype, const int64_t* dims, size_t rank,
                                      void* data, size_t nbytes, kiln_tensor** out_tensor);
KILN_API void kiln_tensor_free(kiln_tensor* tensor);

KILN_API kiln_status kiln_tensor_dtype(const kiln_tensor* tensor, kiln_dtype* out_dtype);
/** The dims; they live as long as the tensor. */
KILN_API kiln_status kiln_tensor_shape(const kiln_tensor* tensor, const int64_t** out_dims,
                                       size_t* out_rank);
KILN_API kiln_status kiln_tensor_numel(const kiln_tensor* tensor, size_t* out_numel);
KILN_API kiln_status kiln_tensor_nbytes(const kiln_tensor* tensor, size_t* out_nbytes);
/** The row-major elements, valid as long as the tensor. */
KILN_API kiln_status kiln_tensor_data(const kiln_tensor* tensor, const void** out_data);
/** Copies the elements into `dst`, whose size `nbytes` must equal kiln_tensor_nbytes. */
KILN_API kiln_status kiln_tensor_copy_to(const kiln_tensor* tensor, void* dst, size_t nbytes);

/* ---- Drift monitor ---------------------------------------------------------------- */
/* An opt-in monitor beside a model: it counts the inputs (and predictions) it is shown per
 * bin of the reference profile stored in the model file (section "kiln.profile"), in fixed
 * memory, and compares them with the profile (KS for numeric features, chi-squared for
 * categories and predicted classes, PSI beside each; Bonferroni-corrected alpha). See
 * docs/mlops.md. kiln_monitor_run / _observe / _observe_labels may be called from many
 * threads at once; the report calls (kiln_monitor_drifted and the getters reading its
 * report) are serialised inside the monitor. */

typedef struct kiln_monitor kiln_monitor;

/** What kiln::monitor::MonitorOptions holds; kiln_monitor_options_default fills the
 *  defaults. */
typedef struct kiln_monitor_options {
  double alpha;              /**< family-wise false-alarm rate, 0.05 */
  double psi_moderate;       /**< 0.1 */
  double psi_significant;    /**< 0.2 */
  uint64_t min_rows;         /**< no feature is flagged before this many live rows, 100 */
  uint32_t sample_every;     /**< observe one row in sample_every (the cost knob) */
  int inputs_preprocessed;   /**< non-zero: inputs are normalised; the monitor undoes it */
  double decay_tolerance;    /**< allowed drop of the live metric, 0.02 */
  double decay_alpha;        /**< 0.05 */
  uint64_t decay_min_labels; /**< 100 */
} kiln_monitor_options;

/** One feature's (or the predictions') comparison in the monitor's last report. */
typedef struct kiln_feature_drift {
  const char* name; /**< valid until the next kiln_monitor_drifted / _reset / _free */
  const char* test; /**< "ks" or "chi2" */
  uint64_t rows;    /**< live values compared */
  double statistic; /**< KS D or chi-squared */
  double p_value;
  double psi;
  int psi_level; /**< 0 none, 1 moderate, 2 significant */
  int drifted;   /**< p_value < alpha / m with at least min_rows rows */
  uint64_t nonfinite, below_min, above_max, unseen_category;
  double live_mean;
} kiln_feature_drift;

KILN_API void kiln_monitor_options_default(kiln_monitor_options* out_options);
/** A monitor of `model` (which must carry a "kiln.profile" section: KILN_ERROR_NAME
 *  otherwise); options NULL: the defaults. The monitor keeps what it needs of the model. */
KILN_API kiln_status kiln_monitor_create(const kiln_model* model,
                                         const kiln_monitor_options* options,
                                         kiln_monitor** out_monitor);
KILN_API void kiln_monitor_free(kiln_monitor* monitor);
/** kiln_model_run, then observes the inputs and the outputs. */
KILN_API kiln_status kiln_monitor_run(kiln_monitor* monitor, const kiln_model* model,
                                      const char* const* input_names,
                                      const kiln_tensor* const* inputs, size_t num_inputs,
                                      kiln_tensor** outputs, size_t num_outputs);
/** Observes inputs (the profile's input among them) and, optionally, the model's outputs
 *  by name (num_outputs 0: inputs only). */
KILN_API kiln_status kiln_monitor_observe(kiln_monitor* monitor, const char* const* input_names,
                                          const kiln_tensor* const* inputs, size_t num_inputs,
                                          const char* const* output_names,
                                          const kiln_tensor* const* outputs, size_t num_outputs);
/** Predicted classes logged earlier and the labels that arrived for them. */
KILN_API kiln_status kiln_monitor_observe_labels(kiln_monitor* monitor, const int64_t* predicted,
                                                 const int64_t* labels, size_t count);
/** The same for value predictions. */
KILN_API kiln_status kiln_monitor_observe_label_values(kiln_monitor* monitor,
                                                       const double* predicted,
                                                       const double* labels, size_t count);
/** Compares the live counts with the profile now (the monitor keeps this report for the
 *  getters below) and says whether any feature or the predictions drifted. */
KILN_API kiln_status kiln_monitor_drifted(kiln_monitor* monitor, int* out_drifted);
/** From the last report (made now if there is none): rows seen, rows observed (sampled),
 *  and the number of features. */
KILN_API kiln_status kiln_monitor_counts(kiln_monitor* monitor, uint64_t* out_rows_seen,
                                         uint64_t* out_rows_observed, size_t* out_num_features);
/** Feature `index` of the last report; index == the number of features: the predictions. */
KILN_API kiln_status kiln_monitor_feature(kiln_monitor* monitor, size_t index,
                                          kiln_feature_drift* out_feature);
/** Live metric from labels: labelled count, live and reference metric (accuracy or MSE;
 *  reference NaN when the profile records none), and the decay alarm. */
KILN_API kiln_status kiln_monitor_labels(kiln_monitor* monitor, uint64_t* out_labelled,
                                         double* out_live, double* out_reference, int* out_decayed);
/** Writes a snapshot (JSON, docs/mlops.md) atomically, for `kiln drift` and pipelines. */
KILN_API kiln_status kiln_monitor_write_snapshot(const kiln_monitor* monitor, const char* path);
/** Forgets the live statistics (a new window). */
KILN_API kiln_status kiln_monitor_reset(kiln_monitor* monitor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KILN_H */
