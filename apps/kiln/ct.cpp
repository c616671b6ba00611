// kiln ct: one run of a continuous-training pipeline (kiln::mlops::run_pipeline), its steps
// printed as they happen, and an exit code a scheduler can act on.
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/pipeline.hpp"

namespace kiln_cli {

int run_ct(const CtArgs& args) {
  const kiln::mlops::PipelineSpec spec = kiln::mlops::PipelineSpec::load(args.pipeline);
  // Text mode prints the steps on stdout; --json keeps stdout for the result object and
  // prints the steps on stderr.
  std::FILE* steps = args.json ? stderr : stdout;
  std::fprintf(steps, "kiln ct %s: %s -> %s@%s\n", args.pipeline.c_str(), spec.name.c_str(),
               spec.name.c_str(), spec.alias.c_str());
  std::fflush(steps);
  kiln::mlops::PipelineOptions options;
  options.force = args.force;
  options.on_step = [steps](const std::string& step, const std::string& summary) {
    std::fprintf(steps, "  %-9s %s\n", (step + ":").c_str(), summary.c_str());
    std::fflush(steps);
  };
  kiln::mlops::PipelineResult r;
  try {
    r = kiln::mlops::run_pipeline(spec, options);
  } catch (const kiln::NonFiniteError& e) {
    // As kiln train: a candidate whose loss diverged; nothing was registered.
    std::fprintf(stderr, "kiln: training failed: %s\n", e.what());
    return exit_training;
  }
  const int code = kiln::mlops::outcome_exit_code(r.outcome);
  if (args.json) {
    std::cout << r.to_json() << "\n";
    return code;
  }
  std::string what;
  switch (r.outcome) {
    case kiln::mlops::Outcome::promoted:
      what = spec.name + " v" + std::to_string(*r.version) + " is " + spec.name + "@" + spec.alias;
      break;
    case kiln::mlops::Outcome::rejected:
      what = "the candidate was not registered";
      break;
    case kiln::mlops::Outcome::skipped:
      what = "the trigger did not fire (--force runs anyway)";
      break;
    case kiln::mlops::Outcome::invalid_data:
      what = "the new data does not fit " + spec.name + "@" + spec.alias;
      break;
  }
  std::printf("outcome: %s: %s (exit %d)\n", kiln::mlops::outcome_name(r.outcome), what.c_str(),
              code);
  for (const std::string& reason : r.reasons) std::printf("  reason: %s\n", reason.c_str());
  std::printf("report: %s\n", r.report_path.c_str());
  return code;
}

}  // namespace kiln_cli
