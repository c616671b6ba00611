// Uses the model registry of an installed Kiln::kiln (SQLite inside libkiln): saves a small
// model, registers it, promotes it and loads it back by alias, checking the content hash and
// the output.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/ops.hpp"

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "kiln_consumer_registry";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string file = (dir / "m.kiln").string();

  kiln::Graph g;
  kiln::Value x = g.input("x", {kiln::batch, 2});
  kiln::Value w = g.parameter("w", kiln::Tensor::from(std::vector<float>{1, 2, 3, 4}, {2, 2}));
  kiln::save_model(file, g, {.inputs = {x}, .outputs = {kiln::matmul(x, w)}});

  auto reg = kiln::registry::open((dir / "models").string());
  const kiln::registry::Version v = reg.register_model("consumer", file);
  reg.set_alias("consumer", "production", v.version);
  const kiln::infer::Model m = reg.load("consumer@production");
  const std::vector<float> y =
      m.run({{"x", kiln::Tensor::from(std::vector<float>{1, 1}, {1, 2})}})[0].to_vector<float>();
  std::printf("registered consumer:%lld (hash %s), loaded by alias: [%g, %g]\n",
              static_cast<long long>(v.version), v.hash.substr(0, 12).c_str(), y[0], y[1]);
  const bool ok = v.version == 1 && m.content_hash() == kiln::model_content_hash(file) &&
                  y.size() == 2 && y[0] == 4.0f && y[1] == 6.0f;
  fs::remove_all(dir);
  if (!ok) {
    std::fprintf(stderr, "the registry did not give back the registered model\n");
    return 1;
  }
  return 0;
}
