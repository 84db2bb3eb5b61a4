// The `perseus` command.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Perseus: removes energy bloat from pipeline-parallel training by planning a GPU "
      "frequency for every forward and backward computation."};
  app.set_version_flag("--version", PERSEUS_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  perseus::cli::RegisterPlan(&app, &exit_code);
  perseus::cli::RegisterShowPlan(&app, &exit_code);
  perseus::cli::RegisterShowSchedule(&app, &exit_code);
  perseus::cli::RegisterDemo(&app, &exit_code);
  perseus::cli::RegisterEmulate(&app, &exit_code);
  perseus::cli::RegisterSimulate(&app, &exit_code);
  perseus::cli::RegisterReport(&app, &exit_code);
  perseus::cli::RegisterProfile(&app, &exit_code);
  perseus::cli::RegisterGpu(&app, &exit_code);
  perseus::cli::RegisterGpud(&app, &exit_code);
  perseus::cli::RegisterServe(&app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as every other error: what is wrong, and where to look.
    std::fprintf(stderr, "perseus: error: %s (see --help)\n", e.what());
    return 2;  // bad command line: same code as any other bad input
  }
  return exit_code;
}
