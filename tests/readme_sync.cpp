// readme_sync <repository root>: checks that every C++ code block of README.md is an excerpt of
// a program under examples/ that the test suite compiles and runs.
//
// Why: README examples rot when nothing compiles them. Each ```cpp block of README.md must be
// preceded by a line `<!-- example: examples/<file>.cpp -->`, and its text must equal the lines
// of that file between `// README begin` and `// README end` markers (all such regions of the
// file, in order, each with its common indentation removed). The first difference is printed
// with both line numbers; the exit status is non-zero when anything differs or is unmarked.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

bool read_lines(const std::string& path, std::vector<std::string>* lines) {
  std::ifstream f(path);
  if (!f) return false;
  std::string line;
  while (std::getline(f, line)) lines->push_back(line);
  return true;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

struct excerpt_line {
  std::string text;
  std::size_t line;  // 1-based line in the example file
};

// The marked regions of an example, concatenated, each without its common indentation.
bool excerpt_of(const std::string& path, std::vector<excerpt_line>* out) {
  std::vector<std::string> lines;
  if (!read_lines(path, &lines)) return false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (trim(lines[i]) != "// README begin") continue;
    std::size_t end = i + 1;
    while (end < lines.size() && trim(lines[end]) != "// README end") ++end;
    std::size_t indent = std::string::npos;
    for (std::size_t j = i + 1; j < end; ++j)
      if (!trim(lines[j]).empty()) indent = std::min(indent, lines[j].find_first_not_of(' '));
    for (std::size_t j = i + 1; j < end; ++j)
      out->push_back({trim(lines[j]).empty() ? std::string() : lines[j].substr(indent), j + 1});
    i = end;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: readme_sync <repository root>\n");
    return 2;
  }
  const std::string root = argv[1], marker = "<!-- example: ";
  std::vector<std::string> readme;
  if (!read_lines(root + "/README.md", &readme)) {
    std::fprintf(stderr, "readme_sync: cannot read %s/README.md\n", root.c_str());
    return 2;
  }
  int failures = 0, blocks = 0;
  std::string example;  // from the last marker line, until its block
  for (std::size_t i = 0; i < readme.size(); ++i) {
    const std::string t = trim(readme[i]);
    if (t.rfind(marker, 0) == 0 && t.size() > marker.size() + 4 && t.compare(t.size() - 4, 4, " -->") == 0) {
      example = t.substr(marker.size(), t.size() - marker.size() - 4);
      continue;
    }
    if (t.rfind("```", 0) != 0) continue;
    const bool cpp = t == "```cpp" || t == "```c++";
    std::size_t end = i + 1;
    while (end < readme.size() && trim(readme[end]) != "```") ++end;
    if (cpp && example.empty()) {
      std::printf("README.md:%zu: C++ block without a `%sexamples/<file>.cpp -->` line before it\n", i + 1, marker.c_str());
      ++failures;
    } else if (!example.empty()) {
      ++blocks;
      std::vector<excerpt_line> want;
      if (!excerpt_of(root + "/" + example, &want) || want.empty()) {
        std::printf("README.md:%zu: %s is missing or has no `// README begin` ... `// README end` region\n", i + 1, example.c_str());
        ++failures;
      } else {
        const std::size_t n = end - i - 1;
        for (std::size_t j = 0; j < std::max(n, want.size()); ++j) {
          const std::string have = j < n ? readme[i + 1 + j] : "(end of block)";
          const std::string need = j < want.size() ? want[j].text : "(end of excerpt)";
          if (have != need) {
            std::printf("README.md:%zu differs from %s:%zu\n  README:  %s\n  example: %s\n", i + 2 + j, example.c_str(),
                        j < want.size() ? want[j].line : want.back().line, have.c_str(), need.c_str());
            ++failures;
            break;
          }
        }
      }
    }
    example.clear();
    i = end;
  }
  std::printf("readme_sync: %d example block%s checked, %d problem%s\n", blocks, blocks == 1 ? "" : "s", failures,
              failures == 1 ? "" : "s");
  return failures == 0 ? 0 : 1;
}
