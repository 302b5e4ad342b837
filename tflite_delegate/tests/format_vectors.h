// The format's test vectors, tests/data/format_v1.json (written by
// scripts/make_format_vectors.py, read by the Python tests too), for the gtests.
#ifndef TTQ_DELEGATE_TESTS_FORMAT_VECTORS_H_
#define TTQ_DELEGATE_TESTS_FORMAT_VECTORS_H_

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

#ifndef TTQ_FORMAT_VECTORS_PATH
#error "TTQ_FORMAT_VECTORS_PATH must name tests/data/format_v1.json (see CMakeLists.txt)"
#endif

namespace ttq {
namespace testing {

using Json = nlohmann::json;

// The whole file, parsed once.
inline const Json& FormatVectors() {
  static const Json* vectors = [] {
    std::ifstream in(TTQ_FORMAT_VECTORS_PATH);
    if (!in) throw std::runtime_error("cannot open " + std::string(TTQ_FORMAT_VECTORS_PATH));
    return new Json(Json::parse(in));
  }();
  return *vectors;
}

// The case called `name` in the list `list` (e.g. FormatVectors()["options"]["vectors"]).
inline const Json& FindCase(const Json& list, const std::string& name) {
  for (const Json& c : list) {
    if (c.at("name") == name) return c;
  }
  throw std::runtime_error("no test vector named '" + name + "' in " TTQ_FORMAT_VECTORS_PATH);
}

// The FlexBuffer bytes of an options case, by name (vectors first, then reject cases).
inline std::vector<uint8_t> OptionsBytes(const std::string& name) {
  const Json& options = FormatVectors().at("options");
  for (const char* list : {"vectors", "reject"}) {
    for (const Json& c : options.at(list)) {
      if (c.at("name") == name) return c.at("flexbuffer").get<std::vector<uint8_t>>();
    }
  }
  throw std::runtime_error("no options vector named '" + name + "' in " TTQ_FORMAT_VECTORS_PATH);
}

// A [rows][cols] JSON array, flattened row-major.
template <typename T>
std::vector<T> Flatten(const Json& rows) {
  std::vector<T> out;
  for (const Json& row : rows) {
    for (const Json& v : row) out.push_back(v.get<T>());
  }
  return out;
}

}  // namespace testing
}  // namespace ttq

#endif  // TTQ_DELEGATE_TESTS_FORMAT_VECTORS_H_
