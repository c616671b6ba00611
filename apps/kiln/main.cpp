// kiln: train, evaluate, run and inspect Kiln models from the command line.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/version.hpp"

namespace {

constexpr const char* exit_codes_help = R"(Exit codes:
  0  success
  1  usage error (bad or missing arguments)
  2  data error (a bad CSV file, row, column or image)
  3  model error (a bad or corrupt model file, a bad spec, a model that does not fit the data)
  4  I/O error (a file that cannot be read or written)
  5  training failed (a non-finite loss)
  6  kiln drift: drift detected, or the decay alarm raised
  7  kiln validate: warnings only (errors exit with 2)
  8  kiln train --distributed: the ranks failed to work together (see the message)
Errors are printed on stderr, prefixed "kiln: ".)";

constexpr const char* main_footer = R"(
Examples:
  kiln train examples/specs/iris.json --data data/iris.csv --target species --out iris.kiln
  kiln eval iris.kiln --data data/iris.csv
  kiln predict iris.kiln --data new_flowers.csv --out predictions.csv
  kiln inspect iris.kiln
  kiln ops digits_mlp.kiln digits_cnn.kiln
  kiln explain iris.kiln --data data/iris.csv --row 0
  kiln report runs/iris-20261130-091500
  kiln board runs
  kiln serve digits.kiln --port 8080
  kiln validate iris.kiln --data new_flowers.csv
  kiln drift drift.json
  kiln registry register digits digits.kiln && kiln registry promote digits 1
  kiln ct examples/mlops/retrain_on_drift.json
Run "kiln <command> --help" for a command's options; docs/cli.md describes spec files.
)";

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "kiln: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln_cli;
  CLI::App app{"kiln: train, evaluate, run and inspect Kiln models.", "kiln"};
  app.footer(std::string(main_footer) + "\n" + exit_codes_help);
  app.set_version_flag("--version", std::string("kiln ") + kiln::version_string);
  app.require_subcommand(1);

  TrainArgs train;
  CLI::App* t = app.add_subcommand("train", "Train a model described by a spec file on a CSV file");
  t->add_option("spec", train.spec, "Model spec (JSON; see docs/cli.md)")->required();
  t->add_option("--data", train.data, "Training data: CSV with a header row")->required();
  t->add_option("--target", train.target, "Column to predict (default: the spec's task.target)");
  t->add_option("--out", train.out, "Where to write the trained model (.kiln)")->required();
  t->add_option("--test-data", train.test_data,
                "Test on this CSV instead of the spec's held-out split (training.test_split)");
  t->add_option("--seed", train.seed, "Override training.seed");
  t->add_option("--epochs", train.epochs, "Override training.epochs")->check(CLI::PositiveNumber);
  t->add_option("--checkpoint-dir", train.checkpoint_dir,
                "Save a checkpoint/model pair here after every epoch");
  t->add_flag("--resume", train.resume, "Continue from the newest checkpoint in --checkpoint-dir");
  t->add_flag("--json", train.json, "Print one JSON object (history, test metrics) on stdout");
  t->add_flag("--quiet", train.quiet, "No progress output on stderr");
  CLI::Option* t_run =
      t->add_option("--run-dir", train.run_dir,
                    "Record the run into this folder (default: runs/<spec name>-<UTC time>)");
  t->add_flag("--no-record", train.no_record, "Do not record the run")->excludes(t_run);
  t->add_flag("--distributed", train.distributed,
              "Train data-parallel over the ranks started by mpirun or srun (docs/distributed.md)");
  t->footer(R"(
The spec's training.test_split (default 0.2, seeded, stratified for classifiers) is held
out and reported as test_<metric>; --test-data replaces it with a file.

The run is recorded (docs/run-format.md) into --run-dir, by default
runs/<spec file name>-<yyyymmdd-hhmmss UTC>: configuration, environment, metrics every 10
steps and per epoch, per-layer statistics, the model graph, data summary, test
evaluation, explanations, the model file and report.html. --no-record turns it off.

Examples:
  kiln train examples/specs/iris.json --data data/iris.csv --target species --out iris.kiln
  kiln train spec.json --data train.csv --test-data test.csv --target price --out m.kiln --json
  kiln train spec.json --data d.csv --target y --out m.kiln --checkpoint-dir run/ --resume
  mpirun -np 4 kiln train spec.json --data d.csv --out m.kiln --distributed

With --distributed every rank reads --data, trains on its shard of each epoch (the spec's
batch_size is per rank) and gradients are averaged over the ranks; rank 0 alone prints,
records the run, writes the checkpoints and --out. --resume may use another rank count.
Started without mpirun/srun, --distributed trains as one rank (and says so).
)");

  EvalArgs eval;
  CLI::App* e = app.add_subcommand("eval", "Evaluate a model on a labelled CSV file");
  e->add_option("model", eval.model, "Model file (.kiln)")->required();
  e->add_option("--data", eval.data, "CSV with the model's feature and target columns")->required();
  e->add_flag("--json", eval.json, "Print one JSON object on stdout");
  e->footer(R"(
Prints the loss-free metrics of the model's task (classifiers: accuracy, precision, recall,
F1 and the confusion matrix; regressors: MSE, MAE, R^2). The CSV is encoded exactly as the
training file was (the model file stores the columns and their encodings).

Example:
  kiln eval iris.kiln --data iris_test.csv --json
)");

  PredictArgs predict;
  CLI::App* p = app.add_subcommand("predict", "Run a model on a CSV file");
  p->add_option("model", predict.model, "Model file (.kiln)")->required();
  p->add_option("--data", predict.data, "CSV with the model's feature columns")->required();
  p->add_option("--out", predict.out, "Write the predictions here (default: stdout)");
  p->add_flag("--probabilities", predict.probabilities,
              "Add one probability column per class (classifiers)");
  p->footer(R"(
Writes a CSV with one row per input row: the predicted class name (classifiers) or value
(regressors) in a column named after the training target, and with --probabilities a
column "p_<class>" per class.

Example:
  kiln predict iris.kiln --data new_flowers.csv --probabilities --out predictions.csv
)");

  InspectArgs inspect;
  CLI::App* i = app.add_subcommand("inspect", "Show what a model file holds");
  i->add_option("model", inspect.model, "Model file (.kiln)")->required();
  i->add_flag("--json", inspect.json, "Print one JSON object on stdout");
  i->footer(R"(
Shows the input and output signatures, metadata, metrics, preprocessing, class labels, the
layers with their output shapes and parameter counts, the content hash, the data columns
and the spec the model was trained from.

Example:
  kiln inspect iris.kiln --json
)");

  OpsArgs ops;
  CLI::App* o =
      app.add_subcommand("ops", "List the ops model files use (a selective build's KILN_OPS)");
  o->add_option("models", ops.models, "Model files (.kiln)")->required();
  o->add_flag("--json", ops.json, "Print one JSON object: the union and each model's ops");
  o->footer(R"footer(
Prints the ops (not inputs, parameters or constants) the models' graphs use, in one line
separated by ';': the KILN_OPS value of a kiln_infer that runs exactly these models.

Example:
  cmake --preset edge -DKILN_OPS="$(kiln ops digits_mlp.kiln digits_cnn.kiln)"
)footer");

  ExplainArgs explain;
  CLI::App* x = app.add_subcommand("explain",
                                   "Explain a model's output for one row, or rank its "
                                   "features by permutation importance");
  x->add_option("model", explain.model, "Model file (.kiln) made by kiln train")->required();
  x->add_option("--data", explain.data, "CSV with the model's feature columns")->required();
  CLI::Option* x_row =
      x->add_option("--row", explain.row, "Explain this data row (from 0; the header is not a row)")
          ->check(CLI::NonNegativeNumber);
  x->add_option("--class", explain.target_class,
                "The class explained: a name or output index (default: the predicted class)");
  x->add_option("--method", explain.method, "integrated-gradients (default) or saliency")
      ->check(CLI::IsMember({"integrated-gradients", "saliency"}));
  x->add_option("--steps", explain.steps,
                "Integration points of integrated gradients (default 256)")
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{100000}));
  x->add_option("--out", explain.out, "The HTML page of an image input's heat map (required then)");
  CLI::Option* x_imp =
      x->add_flag("--importance", explain.importance,
                  "Permutation feature importance over the (labelled) --data instead of one row");
  x->add_option("--repeats", explain.repeats, "Shuffles per column for --importance (default 5)")
      ->check(CLI::PositiveNumber);
  x->add_option("--metric", explain.metric,
                "Metric for --importance (default: accuracy, or r2 for regression)");
  x->add_option("--seed", explain.seed, "Seed of the --importance shuffles (default 0)");
  x->add_flag("--json", explain.json, "Print one JSON object on stdout");
  x_row->excludes(x_imp);
  x->footer(R"(
With --row, prints each feature's value and attribution, largest |attribution| first, the
explained output, the output at the baseline (zeros in the model's input space: the training
mean of standardised features) and the attributions' sum, which integrated gradients make
equal to their difference (more --steps, closer). An image model writes an HTML page (--out)
with the image and the heat map of its attributions side by side.
With --importance, shuffles each data column (the one-hot columns of a category together)
--repeats times and prints the mean drop of the metric, most important first.

Examples:
  kiln explain iris.kiln --data data/iris.csv --row 0 --class 0
  kiln explain digits.kiln --data images.csv --row 3 --out row3.html
  kiln explain iris.kiln --data data/iris.csv --importance --repeats 10 --json
)");

  ReportArgs report;
  CLI::App* r = app.add_subcommand("report", "Build the HTML report of a run, or compare runs");
  r->add_option("run_dirs", report.run_dirs, "Run folders (written by kiln train or RunRecorder)")
      ->required();
  r->add_option("--out", report.out,
                "Where to write the page (default: RUN_DIR/report.html for one run, "
                "comparison.html for several)");
  r->add_option("--drift", report.drift,
                "A drift snapshot (kiln::monitor::Monitor::write_snapshot) to show in a single "
                "run's report (repeatable; RUN_DIR/drift/*.json are shown too)");
  r->footer(R"(
One run folder: (re)builds RUN_DIR/report.html, one self-contained file (no network):
loss and metric curves, learning rate, per-layer statistics with warnings, confusion
matrix, model graph, data summary, explanations, and the drift snapshots of the model
(RUN_DIR/drift/*.json and --drift). Several: their curves overlaid, final metrics side by
side and the hyper-parameters that differ. Prints the file written.

Examples:
  kiln report runs/iris-20261130-091500
  kiln report runs/iris-20261130-091500 --drift device-a.json
  kiln report runs/a runs/b --out a-vs-b.html
)");

  ValidateArgs validate;
  CLI::App* v = app.add_subcommand(
      "validate", "Check a CSV file against a model's data schema and reference profile");
  v->add_option("model", validate.model, "Model file (.kiln) made by kiln train")->required();
  v->add_option("--data", validate.data, "The CSV file to check")->required();
  v->add_option("--target", validate.target,
                "The target column: required (evaluation data), ignore (prediction data) or "
                "if-present (default)")
      ->check(CLI::IsMember({"required", "ignore", "if-present"}));
  v->add_flag("--json", validate.json, "Print one JSON object on stdout");
  v->footer(R"(
Reads the whole file and reports every anomaly with its count and up to five example rows
(file lines; the header is row 1) and values. Errors: missing or duplicate columns, values
that are not numbers in numeric columns, missing values, infinities, categories or classes
the model does not know, ragged rows, bad quoting, unreadable images. Warnings: values
outside the training range (the profile's min and max), columns the model does not use, a
missing target with --target if-present. Exit code 0: clean; 7: warnings only; 2: errors.

Examples:
  kiln validate iris.kiln --data new_flowers.csv
  kiln validate iris.kiln --data labelled.csv --target required --json
)");

  DriftArgs drift;
  CLI::App* d = app.add_subcommand(
      "drift", "Show a drift snapshot: per-feature tests against the reference profile");
  d->add_option("snapshots", drift.snapshots,
                "Snapshot files (kiln::monitor::Monitor::write_snapshot, JSON)")
      ->required();
  d->add_option("--model", drift.model,
                "The model file the snapshots are of: needed to merge several snapshots; "
                "recomputes the tests and draws reference histograms");
  d->add_flag("--json", drift.json, "Print the report as one JSON object on stdout");
  d->add_option("--html", drift.html, "Also write a self-contained HTML page here");
  d->footer(R"(
Prints per feature the test (ks or chi2), its statistic and p-value against the
Bonferroni-corrected alpha, the PSI and its level (moderate >= 0.1, significant >= 0.2),
flagged features first; then the predictions, the live metrics from labels and the verdict.
Several snapshots of the same model (e.g. from several devices) are merged: their live
counts added and every test recomputed against --model's profile.
Exit code 6 when drift is detected or the decay alarm is raised, 0 otherwise.

Examples:
  kiln drift drift.json
  kiln drift device-a.json device-b.json --model digits.kiln --html drift.html
)");

  CtArgs ct;
  CLI::App* c = app.add_subcommand(
      "ct", "Run a continuous-training pipeline: validate, train, gate, register, promote");
  c->add_option("pipeline", ct.pipeline, "Pipeline file (JSON; see docs/mlops.md)")->required();
  c->add_flag("--json", ct.json, "Print the result as one JSON object on stdout (steps on stderr)");
  c->add_flag("--force", ct.force, "Run even when the trigger has not fired");
  c->footer(R"(
Checks the trigger (always, new data files, a drift snapshot, a decay alarm), validates the
new data against the production model, trains a candidate (warm-started from production
with "warm_start": true), evaluates candidate and production on the holdout, applies the
gate and registers and promotes the candidate, or rejects it with the reasons. Writes
result.json and report.html into the pipeline's work_dir. Running it again after an
interruption registers nothing twice.

Exit codes: 0 promoted, 10 rejected by the gate, 11 skipped (the trigger did not fire),
2 invalid data (the new data does not fit the production model).

Examples:
  kiln ct examples/mlops/retrain_on_drift.json
  kiln ct pipeline.json --json --force
)");

#if KILN_CLI_BOARD
  BoardArgs board;
  CLI::App* b = app.add_subcommand("board", "Serve a folder of runs as live reports (a web page)");
  b->add_option("runs_dir", board.runs_dir, "Folder of run folders (or one run folder)")
      ->required();
  b->add_option("--host", board.host, "Address to listen on (default 127.0.0.1: this machine only)")
      ->capture_default_str();
  b->add_option("--port", board.port, "Port (0: a free one, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  b->add_option("--poll-ms", board.poll_ms, "How often open pages check for new data (ms)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{3600000}));
  b->footer(R"(
Prints "kiln board: serving RUNS_DIR on http://HOST:PORT", then serves until Ctrl-C
(SIGINT) or SIGTERM. Open the address in a browser: the index lists the runs with their
status; a run's page is its report, redrawn while the run is training; /compare?run=A&run=B
compares runs. JSON: /api/runs, /api/run/NAME/version.

Examples:
  kiln board runs
  kiln board runs --port 0 --poll-ms 500
)");
#endif

  RegistryArgs registry;
  CLI::App* reg = add_registry_command(app, registry);
#if KILN_CLI_SERVE
  ServeArgs serve;
  CLI::App* srv = add_serve_command(app, serve);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    if (err.get_exit_code() == 0) return app.exit(err);  // --help, --version
    std::fprintf(stderr, "kiln: %s\nRun 'kiln --help' (or 'kiln <command> --help') for usage.\n",
                 err.what());
    return exit_usage;
  }

  try {
    if (*t) return run_train(train);
    if (*e) return run_eval(eval);
    if (*p) return run_predict(predict);
    if (*i) return run_inspect(inspect);
    if (*o) return run_ops(ops);
    if (*x) return run_explain(explain);
    if (*r) return run_report(report);
    if (*v) return run_validate(validate);
    if (*d) return run_drift(drift);
    if (*c) return run_ct(ct);
    if (*reg) return run_registry(registry);
#if KILN_CLI_BOARD
    if (*b) return run_board(board);
#endif
#if KILN_CLI_SERVE
    if (*srv) return run_serve(serve);
#endif
    return fail(exit_usage, "no command given (try kiln --help)");
  } catch (const kiln::DataError& err) {
    return fail(exit_data, err.what());
  } catch (const kiln::IoError& err) {
    return fail(exit_io, err.what());
  } catch (const kiln::Error& err) {
    // FormatError, a bad spec (ValueError), a model that does not fit the data (ShapeError,
    // NameError, ...); a non-finite loss is reported by run_train itself.
    return fail(exit_model, err.what());
  } catch (const std::bad_alloc&) {
    return fail(exit_model, "out of memory");
  } catch (const std::exception& err) {
    return fail(exit_model, err.what());
  }
}
