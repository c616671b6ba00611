// kiln registry: register, list, show, promote, alias, rollback, diff, log and verify the
// versions of models in a registry folder (kiln::registry, kiln/mlops/registry.hpp).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/registry.hpp"

namespace kiln_cli {
namespace {

using json = nlohmann::json;
namespace reg = kiln::registry;

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json optional_json(const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); }

json version_json(const reg::Version& v) {
  const reg::Lineage& l = v.lineage;
  json data = json::array();
  for (const auto& [path, sha] : l.data) data.push_back({{"path", path}, {"sha256", sha}});
  json params = json::object();
  for (const auto& [k, value] : l.params) params[k] = value;
  json metrics = json::object();
  for (const auto& [k, value] : l.metrics) metrics[k] = number_or_null(value);
  // The spec as JSON when it is JSON (it is when kiln train wrote it), else as text.
  json spec = nullptr;
  if (!l.spec.empty()) {
    spec = json::parse(l.spec, nullptr, false);
    if (spec.is_discarded()) spec = l.spec;
  }
  return {{"name", v.name},
          {"version", v.version},
          {"reference", v.name + ":" + std::to_string(v.version)},
          {"hash", v.hash},
          {"created", v.created},
          {"path", v.path},
          {"bytes", v.bytes},
          {"aliases", v.aliases},
          {"lineage",
           {{"parent", optional_json(l.parent)},
            {"data", data},
            {"spec", spec},
            {"params", params},
            {"metrics", metrics},
            {"library_version", l.library_version},
            {"run_dir", l.run_dir},
            {"source", l.source},
            {"note", l.note}}}};
}

json event_json(const reg::Event& e) {
  return {{"id", e.id},
          {"time", e.time},
          {"name", e.name},
          {"action", e.action},
          {"alias", e.alias},
          {"version", optional_json(e.version)},
          {"previous", optional_json(e.previous)},
          {"source", e.source}};
}

void print_json(const json& j) { std::cout << j.dump(2) << "\n"; }

std::string short_hash(const std::string& h) { return h.substr(0, 12); }

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : sep) + i;
  return s;
}

std::string metrics_text(const reg::Lineage& l) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : l.metrics) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    parts.push_back(k + "=" + buf);
  }
  return join(parts, " ");
}

std::optional<std::int64_t> alias_target(const reg::Registry& r, const std::string& name,
                                         const std::string& alias) {
  try {
    return r.resolve(name + "@" + alias).version;
  } catch (const kiln::NameError&) {
    return std::nullopt;
  }
}

int run_register(reg::Registry& r, const RegistryArgs& a) {
  reg::Lineage lineage;
  lineage.parent = a.parent;
  for (const std::string& d : a.data) lineage.data.emplace_back(d, "");
  lineage.run_dir = a.run_dir;
  lineage.note = a.note;
  lineage.source = "kiln registry register";
  const reg::Version v = r.register_model(a.name, a.model, lineage);
  if (a.json) {
    json j = version_json(v);
    j["registered"] = v.registered;
    print_json(j);
  } else if (v.registered) {
    std::cout << "registered " << v.name << ":" << v.version << " (hash " << short_hash(v.hash)
              << ") in " << r.dir() << "\n";
  } else {
    std::cout << v.name << ":" << v.version << " already holds this model (hash "
              << short_hash(v.hash) << "): not registered again\n";
  }
  return exit_ok;
}

int run_list(const reg::Registry& r, const RegistryArgs& a) {
  if (a.name.empty()) {
    json models = json::array();
    for (const std::string& name : r.models()) {
      const std::vector<reg::Version> vs = r.versions(name);
      json aliases = json::object();
      for (const reg::Version& v : vs)
        for (const std::string& alias : v.aliases) aliases[alias] = v.version;
      models.push_back({{"name", name},
                        {"versions", vs.size()},
                        {"latest", vs.back().version},
                        {"created", vs.back().created},
                        {"aliases", aliases}});
    }
    if (a.json) {
      print_json({{"registry", r.dir()}, {"models", models}});
      return exit_ok;
    }
    if (models.empty()) std::cout << r.dir() << ": no models\n";
    for (const json& m : models) {
      std::vector<std::string> aliases;
      for (auto it = m["aliases"].begin(); it != m["aliases"].end(); ++it)
        aliases.push_back(it.key() + "=" + std::to_string(it.value().get<std::int64_t>()));
      std::cout << m["name"].get<std::string>() << ": " << m["versions"].get<std::size_t>()
                << " version(s), latest " << m["latest"].get<std::int64_t>() << " ("
                << m["created"].get<std::string>() << ")"
                << (aliases.empty() ? "" : ", " + join(aliases)) << "\n";
    }
    return exit_ok;
  }
  const std::vector<reg::Version> vs = r.versions(a.name);
  if (a.json) {
    json versions = json::array();
    for (const reg::Version& v : vs) versions.push_back(version_json(v));
    print_json({{"registry", r.dir()}, {"name", a.name}, {"versions", versions}});
    return exit_ok;
  }
  for (const reg::Version& v : vs) {
    std::cout << v.name << ":" << v.version << "  " << v.created << "  " << short_hash(v.hash);
    if (!v.aliases.empty()) std::cout << "  [" << join(v.aliases) << "]";
    const std::string metrics = metrics_text(v.lineage);
    if (!metrics.empty()) std::cout << "  " << metrics;
    if (!v.lineage.note.empty()) std::cout << "  \"" << v.lineage.note << "\"";
    std::cout << "\n";
  }
  return exit_ok;
}

int run_show(const reg::Registry& r, const RegistryArgs& a) {
  const reg::Version v = r.resolve(a.reference);
  if (a.json) {
    print_json(version_json(v));
    return exit_ok;
  }
  const reg::Lineage& l = v.lineage;
  std::cout << v.name << ":" << v.version << "\n";
  std::cout << "  hash:            " << v.hash << "\n";
  std::cout << "  created:         " << v.created << "\n";
  std::cout << "  file:            " << v.path << " (" << v.bytes << " bytes)\n";
  std::cout << "  aliases:         " << join(v.aliases) << "\n";
  std::cout << "  parent:          " << (l.parent ? std::to_string(*l.parent) : "") << "\n";
  for (const auto& [path, sha] : l.data)
    std::cout << "  data:            " << path << " (sha256 " << sha << ")\n";
  std::cout << "  metrics:         " << metrics_text(l) << "\n";
  for (const auto& [k, value] : l.params)
    std::cout << "  param:           " << k << " = " << value << "\n";
  std::cout << "  library version: " << l.library_version << "\n";
  std::cout << "  run folder:      " << l.run_dir << "\n";
  std::cout << "  source:          " << l.source << "\n";
  std::cout << "  note:            " << l.note << "\n";
  std::cout << "  spec:            " << (l.spec.empty() ? "(none)" : "stored (see --json)") << "\n";
  return exit_ok;
}

// promote, alias set, alias rm and rollback: print where the alias points now.
int print_move(const RegistryArgs& a, const std::string& name, const std::string& alias,
               std::optional<std::int64_t> now, std::optional<std::int64_t> before,
               const char* verb) {
  if (a.json) {
    print_json({{"name", name},
                {"alias", alias},
                {"version", optional_json(now)},
                {"previous", optional_json(before)}});
    return exit_ok;
  }
  std::cout << name << "@" << alias << " " << verb;
  if (now) std::cout << " version " << *now;
  if (before) std::cout << " (was version " << *before << ")";
  std::cout << "\n";
  return exit_ok;
}

int run_diff(const reg::Registry& r, const RegistryArgs& a) {
  const reg::VersionDiff d = r.diff(a.reference, a.reference_b);
  if (a.json) {
    json fields = json::array();
    for (const auto& [k, x, y] : d.fields) {
      if (k == "spec") {  // as JSON, like show
        json xs = json::parse(x, nullptr, false), ys = json::parse(y, nullptr, false);
        fields.push_back({{"field", k},
                          {"a", xs.is_discarded() ? json(x) : xs},
                          {"b", ys.is_discarded() ? json(y) : ys}});
      } else {
        fields.push_back({{"field", k}, {"a", x}, {"b", y}});
      }
    }
    json metrics = json::array();
    for (const auto& [k, x, y] : d.metrics)
      metrics.push_back({{"name", k}, {"a", number_or_null(x)}, {"b", number_or_null(y)}});
    print_json({{"a", version_json(d.a)},
                {"b", version_json(d.b)},
                {"fields", fields},
                {"metrics", metrics}});
    return exit_ok;
  }
  const std::string na = d.a.name + ":" + std::to_string(d.a.version);
  const std::string nb = d.b.name + ":" + std::to_string(d.b.version);
  std::cout << na << " vs " << nb << "\n";
  if (d.fields.empty() && d.metrics.empty()) std::cout << "  no differences\n";
  for (const auto& [k, x, y] : d.fields) {
    if (k == "spec") {
      std::cout << "  spec: differs (see --json)\n";
      continue;
    }
    std::cout << "  " << k << ": " << (x.empty() ? "(none)" : x) << " -> "
              << (y.empty() ? "(none)" : y) << "\n";
  }
  for (const auto& [k, x, y] : d.metrics) {
    char buf[160];
    if (std::isnan(x) || std::isnan(y)) {
      std::snprintf(buf, sizeof buf, "%.6g -> %.6g", x, y);
    } else {
      std::snprintf(buf, sizeof buf, "%.6g -> %.6g (%+.6g)", x, y, y - x);
    }
    std::cout << "  metric " << k << ": " << buf << "\n";
  }
  return exit_ok;
}

int run_path(const reg::Registry& r, const RegistryArgs& a) {
  const reg::Version v = r.resolve(a.reference);
  const std::string path = r.verified_path(v.name + ":" + std::to_string(v.version));
  if (a.json) {
    print_json({{"reference", a.reference},
                {"name", v.name},
                {"version", v.version},
                {"hash", v.hash},
                {"path", path}});
  } else {
    std::cout << path << "\n";
  }
  return exit_ok;
}

int run_log(const reg::Registry& r, const RegistryArgs& a) {
  const std::vector<reg::Event> events = r.events(a.name);
  if (a.json) {
    json list = json::array();
    for (const reg::Event& e : events) list.push_back(event_json(e));
    print_json({{"registry", r.dir()}, {"events", list}});
    return exit_ok;
  }
  for (const reg::Event& e : events) {
    std::cout << e.time << "  " << e.name;
    if (!e.alias.empty()) std::cout << "@" << e.alias;
    std::cout << "  " << e.action;
    if (e.version) std::cout << " " << *e.version;
    if (e.previous) std::cout << " (was " << *e.previous << ")";
    std::cout << "  by " << e.source << "\n";
  }
  return exit_ok;
}

int run_verify(const reg::Registry& r, const RegistryArgs& a) {
  const std::vector<std::string> problems = r.verify();
  std::size_t versions = 0;
  const std::vector<std::string> models = r.models();
  for (const std::string& m : models) versions += r.versions(m).size();
  if (a.json) {
    print_json({{"registry", r.dir()},
                {"models", models.size()},
                {"versions", versions},
                {"ok", problems.empty()},
                {"problems", problems}});
  } else {
    for (const std::string& p : problems) std::cout << "problem: " << p << "\n";
    std::cout << r.dir() << ": " << versions << " version(s) of " << models.size()
              << " model(s) checked, "
              << (problems.empty() ? "no problems"
                                   : std::to_string(problems.size()) + " problem(s)")
              << "\n";
  }
  return problems.empty() ? exit_ok : exit_model;
}

}  // namespace

CLI::App* add_registry_command(CLI::App& app, RegistryArgs& args) {
  CLI::App* r = app.add_subcommand("registry", "Versions of models: register, promote, roll back");
  r->require_subcommand(1);
  r->fallthrough();  // --registry and --json may follow the subcommand
  r->footer(R"text(
References: NAME (the newest version), NAME:VERSION, NAME@ALIAS. The folder holds
registry.db (SQLite) and objects/ (model files named by content hash); docs/mlops.md.
Exit codes: 0 success, 3 unknown name/version/alias, nothing to roll back to, a corrupt
database or a file that fails its hash check (verify: any problem), 4 I/O error.

Examples:
  kiln registry register digits digits.kiln --data data/digits.csv --run-dir runs/digits-1
  kiln registry promote digits 2
  kiln registry list digits --json
  kiln registry diff digits:1 digits@production
  kiln eval "$(kiln registry path digits@production)" --data data/digits.csv
  kiln registry rollback digits
  kiln registry verify --registry /srv/models
)text");
  r->add_option("--registry", args.registry,
                "Registry folder (default: $KILN_REGISTRY, else ./models; created if missing)");
  r->add_flag("--json", args.json, "Print one JSON object on stdout");
  auto sub = [&](const char* name, const char* what) {
    CLI::App* s = r->add_subcommand(name, what);
    s->callback([&args, name] { args.command = name; });
    return s;
  };

  CLI::App* reg = sub("register", "Add a model file as the next version of NAME");
  reg->add_option("name", args.name, "Model name (letters, digits, '.', '_', '-')")->required();
  reg->add_option("model", args.model, "Model file (.kiln)")->required();
  reg->add_option("--parent", args.parent, "The version it was warm-started from / replaces")
      ->check(CLI::PositiveNumber);
  reg->add_option("--data", args.data, "Data files it was trained on (hashed with SHA-256)");
  reg->add_option("--run-dir", args.run_dir, "Its run folder (kiln train --run-dir)");
  reg->add_option("--note", args.note, "A note kept with the version");

  CLI::App* list = sub("list", "List the models, or the versions of one");
  list->add_option("name", args.name, "Model name");

  CLI::App* show = sub("show", "Show a version: hash, file, aliases, lineage, metrics");
  show->add_option("reference", args.reference, "NAME, NAME:VERSION or NAME@ALIAS")->required();

  CLI::App* path = sub("path", "Print a version's stored file after checking its hash");
  path->add_option("reference", args.reference, "NAME, NAME:VERSION or NAME@ALIAS")->required();

  CLI::App* promote = sub("promote", "Point an alias (default production) at a version");
  promote->add_option("name", args.name, "Model name")->required();
  promote->add_option("version", args.version, "Version number")
      ->required()
      ->check(CLI::PositiveNumber);
  promote->add_option("--alias", args.alias, "Alias to move")->capture_default_str();

  CLI::App* alias = r->add_subcommand("alias", "Set or remove any alias");
  alias->require_subcommand(1);
  CLI::App* alias_set = alias->add_subcommand("set", "Point NAME@ALIAS at VERSION");
  alias_set->callback([&args] { args.command = "alias set"; });
  alias_set->add_option("name", args.name, "Model name")->required();
  alias_set->add_option("alias", args.alias, "Alias")->required();
  alias_set->add_option("version", args.version, "Version number")
      ->required()
      ->check(CLI::PositiveNumber);
  CLI::App* alias_rm = alias->add_subcommand("rm", "Remove NAME@ALIAS");
  alias_rm->callback([&args] { args.command = "alias rm"; });
  alias_rm->add_option("name", args.name, "Model name")->required();
  alias_rm->add_option("alias", args.alias, "Alias")->required();

  CLI::App* rollback =
      sub("rollback", "Move an alias (default production) back to its previous version");
  rollback->add_option("name", args.name, "Model name")->required();
  rollback->add_option("--alias", args.alias, "Alias to move back")->capture_default_str();

  CLI::App* diff = sub("diff", "What differs between two versions: lineage and metrics");
  diff->add_option("a", args.reference, "NAME, NAME:VERSION or NAME@ALIAS")->required();
  diff->add_option("b", args.reference_b, "NAME, NAME:VERSION or NAME@ALIAS")->required();

  CLI::App* log = sub("log", "The event log: registrations and alias moves, oldest first");
  log->add_option("name", args.name, "Only this model");

  sub("verify", "Check the database and every version's file against its hash");

  return r;
}

int run_registry(const RegistryArgs& args) {
  std::string dir = args.registry;
  if (dir.empty()) {
    const char* env = std::getenv("KILN_REGISTRY");
    dir = (env != nullptr && *env != '\0') ? env : "models";
  }
  reg::Registry r = reg::open(dir);
  const std::string& c = args.command;
  if (c == "register") return run_register(r, args);
  if (c == "list") return run_list(r, args);
  if (c == "show") return run_show(r, args);
  if (c == "diff") return run_diff(r, args);
  if (c == "path") return run_path(r, args);
  if (c == "log") return run_log(r, args);
  if (c == "verify") return run_verify(r, args);
  if (c == "promote" || c == "alias set") {
    const std::optional<std::int64_t> before = alias_target(r, args.name, args.alias);
    r.set_alias(args.name, args.alias, args.version, "kiln registry " + c);
    return print_move(args, args.name, args.alias, args.version, before, "->");
  }
  if (c == "alias rm") {
    const std::optional<std::int64_t> before = alias_target(r, args.name, args.alias);
    r.remove_alias(args.name, args.alias, "kiln registry alias rm");
    return print_move(args, args.name, args.alias, std::nullopt, before, "removed");
  }
  if (c == "rollback") {
    const std::optional<std::int64_t> before = alias_target(r, args.name, args.alias);
    const std::int64_t now = r.rollback(args.name, args.alias, "kiln registry rollback");
    return print_move(args, args.name, args.alias, now, before, "rolled back to");
  }
  throw kiln::ValueError("kiln registry: no subcommand given (try kiln registry --help)");
}

}  // namespace kiln_cli
