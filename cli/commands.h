// The `perseus` subcommands. Each Register* adds a subcommand to the app and
// arranges for its Run to be called; Run returns the process exit code
// (0 success, 2 bad input, 1 anything else).
#pragma once

#include "CLI/CLI.hpp"

namespace perseus::cli {

void RegisterPlan(CLI::App* app, int* exit_code);
void RegisterDemo(CLI::App* app, int* exit_code);
void RegisterEmulate(CLI::App* app, int* exit_code);
void RegisterSimulate(CLI::App* app, int* exit_code);
void RegisterReport(CLI::App* app, int* exit_code);
void RegisterShowPlan(CLI::App* app, int* exit_code);
void RegisterShowSchedule(CLI::App* app, int* exit_code);
void RegisterGpu(CLI::App* app, int* exit_code);
void RegisterGpud(CLI::App* app, int* exit_code);
void RegisterProfile(CLI::App* app, int* exit_code);
void RegisterServe(CLI::App* app, int* exit_code);

}  // namespace perseus::cli
