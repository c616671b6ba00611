// The kiln command's subcommands: each takes its parsed arguments, calls the library and
// prints text (or one JSON object with --json) on stdout. Errors are thrown as kiln::Error
// subclasses; main() turns them into "kiln: <message>" on stderr and an exit code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace kiln_cli {

/// Exit codes a pipeline can rely on (documented in --help and docs/cli.md).
enum Exit : int {
  exit_ok = 0,
  exit_usage = 1,        ///< bad command line
  exit_data = 2,         ///< kiln::DataError: bad CSV, image or column
  exit_model = 3,        ///< kiln::FormatError, a bad spec, a model that does not fit the data
  exit_io = 4,           ///< kiln::IoError: a file that cannot be read or written
  exit_training = 5,     ///< training failed (a non-finite loss)
  exit_drift = 6,        ///< kiln drift: drift detected or the decay alarm raised
  exit_warnings = 7,     ///< kiln validate: only warnings (errors exit with exit_data)
  exit_distributed = 8,  ///< kiln train --distributed: the ranks failed to work together
  exit_rejected = 10,    ///< kiln ct: the candidate was rejected by the gate
  exit_skipped = 11,     ///< kiln ct: the trigger did not fire, nothing was trained
};

struct InspectArgs {
  std::string model;
  bool json = false;
};
int run_inspect(const InspectArgs& args);

struct OpsArgs {
  std::vector<std::string> models;
  bool json = false;
};
int run_ops(const OpsArgs& args);

struct TrainArgs {
  std::string spec;
  std::string data;
  std::string target;
  std::string out;
  std::string test_data;
  std::optional<std::uint64_t> seed;
  std::optional<std::int64_t> epochs;
  std::string checkpoint_dir;
  bool resume = false;
  bool json = false;
  bool quiet = false;
  /// The run folder (kiln::report::train_and_record); empty: runs/<spec stem>-<UTC time>.
  std::string run_dir;
  bool no_record = false;
  /// Train data-parallel over the ranks mpirun/srun started (kiln::dist::init); rank 0
  /// prints, records the run and writes --out.
  bool distributed = false;
};
int run_train(const TrainArgs& args);

struct EvalArgs {
  std::string model;
  std::string data;
  bool json = false;
};
int run_eval(const EvalArgs& args);

struct PredictArgs {
  std::string model;
  std::string data;
  std::string out;
  bool probabilities = false;
};
int run_predict(const PredictArgs& args);

struct ExplainArgs {
  std::string model;
  std::string data;
  std::optional<std::int64_t> row;
  std::string target_class;  ///< --class: a class name or output index ("": the predicted)
  std::string method = "integrated-gradients";
  std::int64_t steps = 256;
  std::string out;
  bool importance = false;
  std::int64_t repeats = 5;
  std::string metric;
  std::uint64_t seed = 0;
  bool json = false;
};
int run_explain(const ExplainArgs& args);
struct ReportArgs {
  std::vector<std::string> run_dirs;
  std::string out;  ///< empty: RUN_DIR/report.html for one run, comparison.html for several
  std::vector<std::string> drift;  ///< drift snapshots shown in a single run's report
};
int run_report(const ReportArgs& args);

struct ValidateArgs {
  std::string model;
  std::string data;
  std::string target = "if-present";  ///< "required", "ignore" or "if-present"
  bool json = false;
};
/// exit_ok when the file is clean, exit_warnings with warnings only, exit_data with errors.
int run_validate(const ValidateArgs& args);

struct DriftArgs {
  std::vector<std::string> snapshots;
  std::string model;  ///< needed to merge several snapshots; gives the reference histograms
  bool json = false;
  std::string html;  ///< also write a self-contained HTML page here
};
/// exit_drift when drift or the decay alarm is flagged, exit_ok otherwise.
int run_drift(const DriftArgs& args);

struct BoardArgs {
  std::string runs_dir;
  std::string host = "127.0.0.1";
  int port = 6006;  ///< 0: a free port, printed
  std::int64_t poll_ms = 1000;
};
/// Serves until SIGINT or SIGTERM (then returns exit_ok).
int run_board(const BoardArgs& args);

struct CtArgs {
  std::string pipeline;
  bool json = false;
  bool force = false;
};
/// Returns the outcome's exit code: 0 promoted, 10 rejected, 11 skipped, 2 invalid data.
int run_ct(const CtArgs& args);

/// kiln serve MODEL... (apps/kiln/serve.cpp; only in a build with cpp-httplib).
struct ServeArgs {
  std::vector<std::string> models;  ///< [NAME=]FILE or [NAME=]REFERENCE
  std::string registry;             ///< --registry; empty: $KILN_REGISTRY, else ./models
  std::string host = "127.0.0.1";
  int port = 8080;  ///< 0: a free port, printed (and written to port_file)
  std::string port_file;
  std::int64_t max_batch = 32;
  std::int64_t max_delay_us = 0;
  bool no_batching = false;
  std::int64_t workers = 1;
  std::int64_t max_queue = 256;
  std::int64_t max_body_bytes = std::int64_t{8} << 20;
  std::int64_t max_rows = 1024;
  std::int64_t max_json_depth = 32;
  std::int64_t timeout_ms = 10000;
  std::int64_t reload_ms = 1000;
  std::string snapshot_dir;
  std::int64_t snapshot_ms = 60000;
  std::int64_t feedback_capacity = 100000;
  std::int64_t threads = 8;  ///< connection threads
  std::int64_t read_timeout_ms = 5000;
  std::int64_t write_timeout_ms = 5000;
  std::int64_t keep_alive_max = 100;
  std::int64_t keep_alive_ms = 5000;
};
/// Adds `kiln serve` to `app`, parsing into `args`.
CLI::App* add_serve_command(CLI::App& app, ServeArgs& args);
/// Serves until SIGINT or SIGTERM, then finishes the requests in flight (returns exit_ok).
int run_serve(const ServeArgs& args);

/// kiln registry SUBCOMMAND ... (apps/kiln/registry.cpp).
struct RegistryArgs {
  std::string registry;  ///< --registry; empty: $KILN_REGISTRY, else "models"
  bool json = false;
  std::string command;  ///< the subcommand parsed: "register", "list", "alias set", ...
  std::string name;
  std::string model;
  std::string reference;
  std::string reference_b;
  std::string alias = "production";
  std::int64_t version = 0;
  std::optional<std::int64_t> parent;
  std::vector<std::string> data;
  std::string run_dir;
  std::string note;
};
/// Adds `kiln registry` and its subcommands to `app`, parsing into `args`.
CLI::App* add_registry_command(CLI::App& app, RegistryArgs& args);
int run_registry(const RegistryArgs& args);

}  // namespace kiln_cli
