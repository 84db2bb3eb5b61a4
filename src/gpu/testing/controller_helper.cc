// A stand-in training process for the exit-path tests. It locks a GPU's SM
// clock through a FrequencyController, prints "locked", then leaves the way
// the first argument says:
//   direct GPU MHZ return   return from main (the controller's destructor)
//   direct GPU MHZ exit     std::exit(0) with the controller still alive
//   direct GPU MHZ throw    an uncaught exception (std::terminate)
//   direct GPU MHZ wait     wait for a signal (SIGINT/SIGTERM)
//   gpud SOCKET GPU MHZ     lock through gpud, then wait until killed
// The nvml backend loads libnvidia-ml.so.1 through the loader's search path.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "perseus/gpu/frequency_controller.h"
#include "perseus/gpu/gpud.h"
#include "perseus/gpu/nvml_backend.h"

using namespace perseus::gpu;

namespace {

int Fail(const perseus::Status& status) {
  std::fprintf(stderr, "controller_helper: %s\n", status.message().c_str());
  return 1;
}

void Locked() {
  std::printf("locked\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: controller_helper direct GPU MHZ MODE | gpud SOCKET GPU MHZ\n");
    return 2;
  }
  const std::string kind = argv[1];
  if (kind == "gpud") {
    auto client = GpudClient::Connect(argv[2]);
    if (!client.ok()) return Fail(client.status());
    RemoteGpu gpu(*client, std::atoi(argv[3]));
    FrequencyController controller(gpu);
    controller.Set(std::atoi(argv[4]));
    if (perseus::Status s = controller.Flush(); !s.ok()) return Fail(s);
    Locked();
    for (;;) pause();
  }
  auto backend = OpenNvmlBackend();
  if (!backend.ok()) return Fail(backend.status());
  auto device = DeviceAt(**backend, std::atoi(argv[2]));
  if (!device.ok()) return Fail(device.status());
  auto* controller = new FrequencyController(**device);
  controller->Set(std::atoi(argv[3]));
  if (perseus::Status s = controller->Flush(); !s.ok()) return Fail(s);
  Locked();
  const std::string mode = argv[4];
  if (mode == "return") {
    delete controller;
    return 0;
  }
  if (mode == "exit") std::exit(0);
  if (mode == "throw") throw std::runtime_error("training crashed");
  if (mode == "wait") {
    for (;;) pause();
  }
  return 2;
}
