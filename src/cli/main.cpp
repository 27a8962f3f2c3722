// signround CLI entry point: the only place that catches errors and sets the exit code.
#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  std::fprintf(stderr, "signround: no subcommands yet\n");
  return 2;
}
