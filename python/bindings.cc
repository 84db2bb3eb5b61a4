// perseus._perseus: the C++ library for Python (pybind11). The Python package
// `perseus` (python/perseus/__init__.py) re-exports it with docs; stubs are in
// python/perseus/_perseus.pyi.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <stdexcept>

#include "perseus/client/client.h"
#include "perseus/emulator/emulator.h"
#include "perseus/gpu/frequency_controller.h"
#include "perseus/gpu/nvml_backend.h"
#include "perseus/gpu/profiler.h"
#include "perseus/gpu/runtime.h"
#include "perseus/gpu/sim_gpu.h"
#include "perseus/job/job.h"
#include "perseus/planner/improve.h"
#include "perseus/planner/solver.h"

namespace py = pybind11;
using namespace perseus;

namespace {

// A failed Status on its way to Python.
struct StatusError : std::runtime_error {
  explicit StatusError(const Status& s) : std::runtime_error(s.message()), code(s.code()) {}
  StatusCode code;
};

void Check(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

PyObject* g_errors[6] = {};  // by StatusCode order below

PyObject* ErrorFor(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidInput:
      return g_errors[1];
    case StatusCode::kNotFound:
      return g_errors[2];
    case StatusCode::kPermissionDenied:
      return g_errors[3];
    case StatusCode::kUnavailable:
      return g_errors[4];
    default:
      return g_errors[5];
  }
}

// The plan step kind of an overlapped forward+backward (DualPipeV).
constexpr const char* kOverlapKind = "overlap_f_b";

// `overlap`: the caller also takes kOverlapKind (named in the message).
planner::Instruction ParseKind(const std::string& kind, bool overlap = false) {
  planner::Instruction i;
  if (!planner::ParseInstruction(kind, &i)) {
    throw StatusError(Status::InvalidInput(
        "unknown instruction '" + kind + "': forward, backward, backward_input" +
        (overlap ? ", backward_weight or overlap_f_b" : " or backward_weight")));
  }
  return i;
}

// One plan step as Python sees it: {kind, microbatch, stage, frequency_mhz},
// and for an overlapped forward+backward kind "overlap_f_b" (stage and
// microbatch of the forward half) with backward: {kind, stage, microbatch}.
py::dict Step(planner::Instruction kind, int microbatch, int stage, int frequency_mhz,
              const planner::Part* backward) {
  py::dict step;
  step["kind"] = backward != nullptr ? std::string("overlap_f_b")
                                     : std::string(planner::InstructionName(kind));
  step["microbatch"] = microbatch;
  step["stage"] = stage;
  step["frequency_mhz"] = frequency_mhz;
  if (backward != nullptr) {
    py::dict b;
    b["kind"] = std::string(planner::InstructionName(backward->instruction));
    b["stage"] = backward->stage;
    b["microbatch"] = backward->microbatch;
    step["backward"] = b;
  }
  return step;
}

// A planned job: the frontier with the problem it was computed for.
struct PyFrontier {
  job::PreparedJob job;
  planner::Frontier frontier;
};

// A plan per pipeline rank: its computations in execution order.
py::list RankSteps(const PyFrontier& f, const planner::Plan& plan) {
  const planner::Problem& problem = f.frontier.problem();
  const planner::Dag& dag = *problem.dag;
  py::list ranks;
  for (const auto& order : dag.gpu_order()) {
    py::list steps;
    for (int id : order) {
      const planner::Computation& c = dag.node(id);
      steps.append(Step(c.instruction, c.microbatch, c.stage,
                        problem.option(id, plan[static_cast<size_t>(id)]).frequency_mhz,
                        c.overlapped() ? &c.overlap : nullptr));
    }
    ranks.append(steps);
  }
  return ranks;
}

void CheckPlan(const PyFrontier& f, const planner::Plan& plan) {
  const planner::Problem& problem = f.frontier.problem();
  if (static_cast<int>(plan.size()) != problem.dag->num_nodes()) {
    throw StatusError(Status::InvalidInput("a plan has one option index per computation (" +
                                           std::to_string(problem.dag->num_nodes()) + "), got " +
                                           std::to_string(plan.size())));
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const int options = static_cast<int>(problem.set(static_cast<int>(i)).options.size());
    if (plan[i] < 0 || plan[i] >= options) {
      throw StatusError(Status::InvalidInput("computation " + std::to_string(i) + " has " +
                                             std::to_string(options) + " options, got index " +
                                             std::to_string(plan[i])));
    }
  }
}

struct PySimBackend {
  std::unique_ptr<gpu::SimBackend> backend;
};

struct PyNvmlBackend {
  std::unique_ptr<gpu::Backend> backend;
};

// A GPU whose readings come from the runtime's backend and whose clock changes
// go where GpuRuntime::clocks routes them (through gpud when it has a socket).
class RoutedDevice final : public gpu::Device {
 public:
  RoutedDevice(gpu::Device& reads, gpu::ClockTarget& clocks) : reads_(reads), clocks_(clocks) {}
  int index() const override { return reads_.index(); }
  std::string name() const override { return reads_.name(); }
  std::string uuid() const override { return reads_.uuid(); }
  std::string pci_bus_id() const override { return reads_.pci_bus_id(); }
  Result<std::vector<int>> SupportedSmClocks() override { return reads_.SupportedSmClocks(); }
  Result<int> CurrentSmClock() override { return reads_.CurrentSmClock(); }
  Result<uint64_t> EnergyMj() override { return reads_.EnergyMj(); }
  Result<double> PowerW() override { return reads_.PowerW(); }
  Status LockSmClock(int mhz) override { return clocks_.LockSmClock(mhz); }
  Status ResetSmClock() override { return clocks_.ResetSmClock(); }
  Status LockMemoryClockMax() override { return reads_.LockMemoryClockMax(); }
  Status ResetMemoryClock() override { return reads_.ResetMemoryClock(); }
  double NowSeconds() const override { return reads_.NowSeconds(); }
  std::string Describe() const override { return clocks_.Describe(); }

 private:
  gpu::Device& reads_;
  gpu::ClockTarget& clocks_;
};

// gpu::GpuRuntime for Python: its backend's GPUs, each routed as the runtime
// says (directly, or clock changes through gpud).
struct PyGpuRuntime {
  std::unique_ptr<gpu::GpuRuntime> runtime;
  std::vector<std::unique_ptr<RoutedDevice>> routed;  // through gpud only

  static PyGpuRuntime Open(const gpu::RuntimeConfig& config) {
    PyGpuRuntime out;
    out.runtime = Check(gpu::GpuRuntime::Open(config));
    if (out.runtime->through_gpud()) {
      for (int i = 0; i < out.runtime->backend().device_count(); ++i) {
        gpu::Device* reads = Check(out.runtime->device(i));
        gpu::ClockTarget* clocks = Check(out.runtime->clocks(i));
        out.routed.push_back(std::make_unique<RoutedDevice>(*reads, *clocks));
      }
    }
    return out;
  }
  gpu::Device& device(int i) {
    gpu::Device* d = Check(runtime->device(i));
    return routed.empty() ? *d : *routed[static_cast<size_t>(i)];
  }
};

// The same runtime opened from a gpud socket (PERSEUS_GPUD_SOCKET's meaning).
struct PyGpudBackend : PyGpuRuntime {};

}  // namespace

PYBIND11_MODULE(_perseus, m) {
  m.doc() = "Perseus: energy scheduling for pipeline-parallel training (C++ core).";

  // Exceptions: PerseusError and one subclass per failure kind, each also a
  // subclass of the matching built-in exception.
  g_errors[0] = PyErr_NewException("perseus.PerseusError", PyExc_Exception, nullptr);
  const std::pair<const char*, PyObject*> error_kinds[] = {
      {"perseus.InvalidInputError", PyExc_ValueError},
      {"perseus.NotFoundError", PyExc_LookupError},
      {"perseus.PermissionDeniedError", PyExc_PermissionError},
      {"perseus.UnavailableError", PyExc_ConnectionError},
      {"perseus.InternalError", PyExc_RuntimeError}};
  for (size_t i = 0; i < 5; ++i) {
    PyObject* bases = PyTuple_Pack(2, g_errors[0], error_kinds[i].second);
    g_errors[i + 1] = PyErr_NewException(error_kinds[i].first, bases, nullptr);
    Py_DECREF(bases);
  }
  const char* names[] = {"PerseusError",          "InvalidInputError", "NotFoundError",
                         "PermissionDeniedError", "UnavailableError",  "InternalError"};
  for (size_t i = 0; i < 6; ++i) {
    Py_INCREF(g_errors[i]);
    m.add_object(names[i], py::handle(g_errors[i]));
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyErr_SetString(ErrorFor(e.code), e.what());
    }
  });

  // ---- planner -------------------------------------------------------------
  py::class_<planner::FrontierPoint>(m, "FrontierPoint", "One point of the time-energy frontier.")
      .def_readonly("time_s", &planner::FrontierPoint::time_s, "Realized iteration time.")
      .def_readonly("energy_j", &planner::FrontierPoint::energy_j, "Realized energy.")
      .def_readonly("model_time_s", &planner::FrontierPoint::model_time_s)
      .def_readonly("model_energy_j", &planner::FrontierPoint::model_energy_j)
      .def("__repr__", [](const planner::FrontierPoint& p) {
        return "FrontierPoint(time_s=" + std::to_string(p.time_s) +
               ", energy_j=" + std::to_string(p.energy_j) + ")";
      });

  py::class_<PyFrontier>(m, "Frontier", "A planned job's iteration time-energy frontier.")
      .def_property_readonly("points", [](const PyFrontier& f) { return f.frontier.points(); })
      .def("__len__", [](const PyFrontier& f) { return f.frontier.size(); })
      .def_property_readonly("t_min_index",
                             [](const PyFrontier& f) { return f.frontier.TMinIndex(); })
      .def_property_readonly("t_star_index",
                             [](const PyFrontier& f) { return f.frontier.TStarIndex(); })
      .def_property_readonly(
          "all_max",
          [](const PyFrontier& f) {
            return py::make_tuple(f.frontier.all_max.time_s, f.frontier.all_max.energy_j);
          },
          "(time_s, energy_j) with every computation at its highest clock.")
      .def_property_readonly(
          "energy_scope", [](const PyFrontier&) { return "pipeline"; },
          "Whose energies the points and all_max are: one pipeline's (the job's are `pipelines` "
          "times them), as the coordinator's frontier says.")
      .def_property_readonly(
          "pipelines", [](const PyFrontier& f) { return f.job.dp; },
          "The job's data-parallel pipelines (dp).")
      .def_property_readonly("solve_seconds",
                             [](const PyFrontier& f) { return f.frontier.solve_seconds; })
      .def_property_readonly("notes", [](const PyFrontier& f) { return f.job.notes; })
      .def_property_readonly(
          "warnings", [](const PyFrontier& f) { return f.job.warnings; },
          "What looks wrong in the input but was planned (each also a UserWarning).")
      .def_property_readonly(
          "blocking_power_w", [](const PyFrontier& f) { return f.job.blocking_power_w; },
          "Watts per GPU while waiting, as planned.")
      .def_property_readonly(
          "blocking_power_source", [](const PyFrontier& f) { return f.job.blocking_power_source; },
          "\"given\", \"measured by perseus profile (FILE)\" or \"none given\".")
      .def(
          "index_for_deadline",
          [](const PyFrontier& f, double deadline_s) -> std::optional<size_t> {
            return f.frontier.IndexForDeadline(deadline_s);
          },
          py::arg("deadline_s"),
          "The lowest-energy point whose realized time is <= deadline_s, or None.")
      .def(
          "plan",
          [](const PyFrontier& f, size_t index) {
            if (index >= f.frontier.size()) {
              throw StatusError(Status::InvalidInput("no frontier point " + std::to_string(index)));
            }
            return RankSteps(f, f.frontier.PlanAt(index));
          },
          py::arg("index"),
          "The plan of point `index`: for every pipeline rank, its computations in execution "
          "order as {kind, microbatch, stage, frequency_mhz}; an overlapped forward+backward "
          "(DualPipeV) has kind 'overlap_f_b', the forward half's stage and microbatch, and "
          "backward: {kind, stage, microbatch}.")
      .def(
          "problem",
          [](const PyFrontier& f) {
            const planner::Problem& problem = f.frontier.problem();
            const planner::Dag& dag = *problem.dag;
            py::list nodes;
            for (int id = 0; id < dag.num_nodes(); ++id) {
              const planner::Computation& c = dag.node(id);
              py::list options;
              for (const planner::Option& o : problem.set(id).options) {
                py::dict option;
                option["frequency_mhz"] = o.frequency_mhz;
                option["time_s"] = o.time_s;
                option["energy_j"] = o.energy_j;
                options.append(option);
              }
              py::dict node;
              node["gpu"] = c.gpu;
              node["stage"] = c.stage;
              node["kind"] = std::string(c.overlapped() ? kOverlapKind
                                                        : planner::InstructionName(c.instruction));
              node["microbatch"] = c.microbatch;
              node["options"] = options;
              py::list successors;
              for (int to : dag.successors(id)) successors.append(to);
              node["successors"] = successors;
              nodes.append(node);
            }
            py::dict out;
            out["num_gpus"] = problem.num_gpus;
            out["blocking_power_w"] = problem.options.blocking_power_w;
            out["nodes"] = nodes;
            return out;
          },
          "The planning problem: {num_gpus, blocking_power_w (per GPU of the DAG, i.e. per "
          "stage), nodes: [{gpu, stage, kind, microbatch, options: [{frequency_mhz, time_s, "
          "energy_j}] (Pareto, fastest first), successors: [node ids]}]}. A plan is one option "
          "index per node; its energy is sum(e) + P * (num_gpus * T - sum(t)).")
      .def(
          "plan_options",
          [](const PyFrontier& f, size_t index) {
            if (index >= f.frontier.size()) {
              throw StatusError(Status::InvalidInput("no frontier point " + std::to_string(index)));
            }
            return f.frontier.PlanAt(index);
          },
          py::arg("index"), "Point `index`'s plan as one option index per node of problem().")
      .def(
          "evaluate",
          [](const PyFrontier& f, const planner::Plan& plan) {
            CheckPlan(f, plan);
            const planner::Figures g = planner::EvaluatePlan(f.frontier.problem(), plan);
            return py::make_tuple(g.time_s, g.energy_j);
          },
          py::arg("options"),
          "(time_s, energy_j) of a plan given as option indices (realized: longest path with "
          "measured times; energy with blocking power).")
      .def(
          "polish",
          [](const PyFrontier& f, const planner::Plan& plan, double deadline_s) {
            CheckPlan(f, plan);
            return planner::PolishPlan(f.frontier.problem(), plan, deadline_s);
          },
          py::arg("options"), py::arg("deadline_s"),
          "PolishPlan: the plan repaired to meet deadline_s with measured times, then slowed "
          "down greedily where the deadline leaves slack.")
      .def(
          "plan_for_deadline",
          [](const PyFrontier& f, double deadline_s, const std::string& objective,
             std::optional<int64_t> max_work) -> std::optional<py::dict> {
            planner::ImproveOptions options;
            if (objective == "at_deadline") {
              options.objective = planner::DeadlineObjective::kAtDeadline;
            } else if (objective != "own_time") {
              throw StatusError(
                  Status::InvalidInput("objective must be 'own_time' or "
                                       "'at_deadline', not '" +
                                       objective + "'"));
            }
            if (max_work) {
              if (*max_work < 0) throw StatusError(Status::InvalidInput("max_work must be >= 0"));
              options.max_work = *max_work;
            }
            std::optional<planner::DeadlinePlan> found;
            {
              py::gil_scoped_release release;
              found = planner::PlanForDeadline(f.frontier, deadline_s, options);
            }
            if (!found) return std::nullopt;
            const planner::ImproveResult& r = found->result;
            py::dict out;
            out["time_s"] = r.figures.time_s;
            out["energy_j"] = r.figures.energy_j;
            out["objective_j"] = r.objective_j;
            out["options"] = r.plan;
            out["plan"] = RankSteps(f, r.plan);
            out["base_point"] = found->base_point;
            out["moves"] = r.moves;
            out["work"] = r.work;
            out["budget_spent"] = r.budget_spent;
            return out;
          },
          py::arg("deadline_s"), py::kw_only(), py::arg("objective") = "own_time",
          py::arg("max_work") = py::none(),
          "The plan to run for deadline_s, improved past the frontier's points by a discrete "
          "local search (PlanForDeadline): {time_s, energy_j, objective_j, options (one option "
          "index per node of problem()), plan (per rank, as plan()), base_point, moves, work, "
          "budget_spent}; None if no point meets the deadline. objective: 'own_time' (the "
          "iteration ends with the plan) or 'at_deadline' (it lasts deadline_s, waiting at "
          "blocking power). max_work: the search's budget in computations visited.");

  m.def(
      "plan",
      [](const std::string& profile, int stages, int microbatches, const std::string& schedule,
         const std::string& schedule_file, const std::string& schedule_csv, int virtual_stages,
         int tp, int dp, std::optional<double> blocking_power_w, double unit_time,
         const std::string& cost_model, double time_scale, double energy_scale) {
        job::JobSpec spec;
        spec.profile_path = profile;
        spec.stages = stages;
        spec.microbatches = microbatches;
        spec.schedule = schedule;
        spec.schedule_file = schedule_file;
        spec.schedule_csv = schedule_csv;
        spec.virtual_stages = virtual_stages;
        spec.tp = tp;
        spec.dp = dp;
        if (blocking_power_w) {
          spec.blocking_power_w = *blocking_power_w;
          spec.blocking_power_source = "given";
        }
        spec.unit_time_s = unit_time;
        spec.cost_model = cost_model;
        spec.time_scale = time_scale;
        spec.energy_scale = energy_scale;
        auto out = std::make_unique<PyFrontier>();
        {
          py::gil_scoped_release release;  // planning can take minutes
          out->job = Check(job::PrepareJob(spec));
          out->frontier = Check(job::SolveJob(out->job));
        }
        // What looks wrong in the input, as Python reports it (also in .warnings).
        for (const std::string& w : out->job.warnings) {
          if (PyErr_WarnEx(PyExc_UserWarning, w.c_str(), 1) != 0) throw py::error_already_set();
        }
        return out;
      },
      py::arg("profile"), py::kw_only(), py::arg("stages") = 0, py::arg("microbatches") = 0,
      py::arg("schedule") = "1f1b", py::arg("schedule_file") = "", py::arg("schedule_csv") = "",
      py::arg("virtual_stages") = 1, py::arg("tp") = 1, py::arg("dp") = 1,
      py::arg("blocking_power_w") = py::none(), py::arg("unit_time") = 0.0,
      py::arg("cost_model") = "convex", py::arg("time_scale") = 1.0, py::arg("energy_scale") = 1.0,
      "Plans a profile CSV: computes the job's whole iteration time-energy frontier (the GIL "
      "is released meanwhile). Same options as `perseus plan`; `schedule_csv` is a "
      "torch.distributed.pipelining schedule CSV as text (what --schedule-file reads).");

  m.def(
      "emulate",
      [](const PyFrontier& f, int pipelines, const std::vector<double>& slowdowns,
         const std::vector<std::string>& methods) {
        emulator::EmulationOptions o;
        o.pipelines = pipelines;
        o.slowdowns = slowdowns;
        o.methods = Check(emulator::ParseMethodNames(methods));
        std::vector<emulator::EmulationRow> rows;
        {
          py::gil_scoped_release release;
          rows = Check(emulator::Emulate(f.frontier, o));
        }
        py::list out;
        for (const auto& row : rows) {
          for (size_t k = 0; k < row.methods.size(); ++k) {
            const auto& r = row.methods[k];
            py::dict d;
            d["slowdown"] = row.slowdown;
            d["method"] = methods[k];
            d["time_s"] = r.time_s;
            d["energy_j"] = r.energy_j;
            d["saving_pct"] = r.saving_pct;
            out.append(d);
          }
        }
        return out;
      },
      py::arg("frontier"), py::kw_only(), py::arg("pipelines") = 1,
      py::arg("slowdowns") = std::vector<double>{1.0},
      py::arg("methods") = emulator::AllMethodNames(),
      "Emulates `pipelines` data-parallel copies with one straggler `slowdown` times slower: "
      "each method's job iteration time, energy and saving against all-max (as `perseus "
      "emulate`). Returns one dict per (slowdown, method).");

  // ---- GPU runtime ------------------------------------------------------------
  py::class_<gpu::Device>(m, "Device", "A GPU: clocks, energy counter, power.")
      .def_property_readonly("index", &gpu::Device::index)
      .def_property_readonly("name", &gpu::Device::name)
      .def_property_readonly("uuid", &gpu::Device::uuid)
      .def_property_readonly("pci_bus_id", &gpu::Device::pci_bus_id,
                             "\"00000000:07:00.0\" as NVML writes it; \"\" if unknown.")
      .def("supported_sm_clocks", [](gpu::Device& d) { return Check(d.SupportedSmClocks()); })
      .def("current_sm_clock", [](gpu::Device& d) { return Check(d.CurrentSmClock()); })
      .def("energy_mj", [](gpu::Device& d) { return Check(d.EnergyMj()); })
      .def("power_w", [](gpu::Device& d) { return Check(d.PowerW()); })
      .def(
          "lock_sm_clock", [](gpu::Device& d, int mhz) { Check(d.LockSmClock(mhz)); },
          py::arg("mhz"))
      .def("reset_sm_clock", [](gpu::Device& d) { Check(d.ResetSmClock()); })
      .def("now", &gpu::Device::NowSeconds, "The clock measurements use, in seconds.");

  py::class_<gpu::SimGpu, gpu::Device>(m, "SimGpu", "A GPU simulated from a profile (one stage).")
      .def_property_readonly("stage", &gpu::SimGpu::stage)
      .def(
          "run",
          [](gpu::SimGpu& g, const std::string& kind) {
            const planner::Instruction i = ParseKind(kind);
            py::gil_scoped_release release;  // may sleep (real_time)
            return Check(g.Run(i));
          },
          py::arg("kind"),
          "Runs one computation at the current clock; returns its simulated time in seconds.")
      .def(
          "block",
          [](gpu::SimGpu& g, double seconds) {
            py::gil_scoped_release release;
            g.Block(seconds);
          },
          py::arg("seconds"), "Waits, drawing the blocking power.");

  py::class_<PySimBackend>(m, "SimBackend", "One simulated GPU per stage of a profile.")
      .def(py::init([](const std::string& profile, double blocking_power_w, double noise,
                       uint64_t seed, bool real_time) {
             gpu::SimGpuOptions o;
             o.blocking_power_w = blocking_power_w;
             o.noise = noise;
             o.seed = seed;
             o.real_time = real_time;
             return PySimBackend{Check(gpu::SimBackend::FromProfileCsv(profile, o))};
           }),
           py::arg("profile"), py::kw_only(), py::arg("blocking_power_w") = 83.64,
           py::arg("noise") = 0.0, py::arg("seed") = 1, py::arg("real_time") = false)
      .def("__len__", [](const PySimBackend& b) { return b.backend->device_count(); })
      .def(
          "__getitem__",
          [](PySimBackend& b, int i) -> gpu::SimGpu& {
            Check(gpu::DeviceAt(*b.backend, i));
            return b.backend->sim_device(i);
          },
          py::return_value_policy::reference_internal);

  py::class_<PyNvmlBackend>(m, "NvmlBackend", "NVIDIA GPUs through libnvidia-ml.so.1.")
      .def(py::init([] { return PyNvmlBackend{Check(gpu::OpenNvmlBackend())}; }))
      .def_property_readonly("version", [](const PyNvmlBackend& b) { return b.backend->version(); })
      .def("__len__", [](const PyNvmlBackend& b) { return b.backend->device_count(); })
      .def(
          "__getitem__",
          [](PyNvmlBackend& b, int i) -> gpu::Device& {
            return *Check(gpu::DeviceAt(*b.backend, i));
          },
          py::return_value_policy::reference_internal);

  py::class_<PyGpuRuntime>(m, "GpuRuntime",
                           "A backend's GPUs with clock changes routed directly or through gpud.")
      .def_property_readonly("backend",
                             [](const PyGpuRuntime& r) { return r.runtime->backend().name(); })
      .def_property_readonly("through_gpud",
                             [](const PyGpuRuntime& r) { return r.runtime->through_gpud(); })
      .def_property_readonly("version",
                             [](const PyGpuRuntime& r) { return r.runtime->backend().version(); })
      .def("__len__", [](const PyGpuRuntime& r) { return r.runtime->backend().device_count(); })
      .def(
          "__getitem__", [](PyGpuRuntime& r, int i) -> gpu::Device& { return r.device(i); },
          py::return_value_policy::reference_internal);

  py::class_<PyGpudBackend, PyGpuRuntime>(
      m, "GpudBackend", "GPUs read through a backend (nvml or sim); clock changes through gpud.")
      .def(py::init([](const std::string& socket_path, const std::string& backend,
                       const std::string& sim_profile) {
             gpu::RuntimeConfig config;
             config.backend = backend;
             config.sim_profile = sim_profile;
             config.gpud_socket = socket_path;
             if (socket_path.empty()) {
               throw StatusError(Status::InvalidInput("GpudBackend needs gpud's socket path"));
             }
             PyGpudBackend out;
             static_cast<PyGpuRuntime&>(out) = PyGpuRuntime::Open(config);
             return out;
           }),
           py::arg("socket_path"), py::kw_only(), py::arg("backend") = "nvml",
           py::arg("sim_profile") = "");

  m.def(
      "open_backend", [] { return PyGpuRuntime::Open(gpu::RuntimeConfig::FromEnvironment()); },
      "The GPU runtime the environment names, as the C++ GpuRuntime opens it: "
      "PERSEUS_GPU_BACKEND (nvml, default, or sim with PERSEUS_SIM_PROFILE); with "
      "PERSEUS_GPUD_SOCKET set, clock changes go through gpud at that socket.");

  py::class_<gpu::ClockEvent>(m, "ClockEvent")
      .def_readonly("requested_mhz", &gpu::ClockEvent::requested_mhz)
      .def_readonly("applied_mhz", &gpu::ClockEvent::applied_mhz)
      .def_readonly("skipped", &gpu::ClockEvent::skipped)
      .def_readonly("requested_s", &gpu::ClockEvent::requested_s)
      .def_readonly("applied_s", &gpu::ClockEvent::applied_s);

  py::class_<gpu::FrequencyController>(
      m, "FrequencyController",
      "Sets a GPU's SM clock without waiting for the driver; restores it on exit.")
      .def(py::init([](gpu::Device& device, bool reset_on_signals) {
             gpu::ControllerOptions o;
             o.reset_on_signals = reset_on_signals;
             return std::make_unique<gpu::FrequencyController>(device, o);
           }),
           py::arg("device"), py::kw_only(), py::arg("reset_on_signals") = true,
           py::keep_alive<1, 2>())
      .def("set", &gpu::FrequencyController::Set, py::arg("mhz"),
           "Requests an SM clock; returns at once.")
      .def("reset", &gpu::FrequencyController::Reset, "Requests the default clock.")
      .def(
          "flush",
          [](gpu::FrequencyController& c) {
            Status s;
            {
              py::gil_scoped_release release;
              s = c.Flush();
            }
            Check(s);
          },
          "Waits until every request is applied; raises the last failure.")
      .def("history", &gpu::FrequencyController::History)
      .def_property_readonly("driver_calls", &gpu::FrequencyController::driver_calls);

  py::class_<gpu::MeasurementWindow>(m, "MeasurementWindow",
                                     "Time and energy of a stretch of GPU work.")
      .def(py::init<gpu::Device&>(), py::arg("device"), py::keep_alive<1, 2>())
      .def("begin", [](gpu::MeasurementWindow& w) { Check(w.Begin()); })
      .def(
          "end",
          [](gpu::MeasurementWindow& w) {
            const gpu::Sample s = Check(w.End());
            return py::make_tuple(s.time_s, s.energy_j);
          },
          "Returns (time_s, energy_j) since begin().");

  py::class_<gpu::SweepRow>(m, "SweepRow")
      .def_property_readonly("kind",
                             [](const gpu::SweepRow& r) {
                               return std::string(planner::InstructionName(r.instruction));
                             })
      .def_readonly("frequency_mhz", &gpu::SweepRow::frequency_mhz)
      .def_readonly("time_s", &gpu::SweepRow::time_s)
      .def_readonly("energy_j", &gpu::SweepRow::energy_j)
      .def_readonly("samples_kept", &gpu::SweepRow::samples_kept)
      .def_readonly("samples_dropped", &gpu::SweepRow::samples_dropped);

  py::class_<gpu::FrequencySweep>(
      m, "FrequencySweep",
      "The online profiler's decisions: which clock to run the next iteration at, when to stop.")
      .def(py::init([](std::vector<int> frequencies, const std::vector<std::string>& kinds,
                       int warmup, int iterations, int patience, double outlier_threshold) {
             std::vector<planner::Instruction> instructions;
             for (const auto& k : kinds) instructions.push_back(ParseKind(k));
             gpu::ProfilerOptions o;
             o.warmup_iterations = warmup;
             o.measure_iterations = iterations;
             o.patience = patience;
             o.outlier_threshold = outlier_threshold;
             std::sort(frequencies.rbegin(), frequencies.rend());
             auto sweep =
                 gpu::FrequencySweep::Make(std::move(frequencies), std::move(instructions), o);
             if (!sweep.ok()) Check(sweep.status());  // nothing or bad things to sweep
             return std::make_unique<gpu::FrequencySweep>(std::move(sweep).value());
           }),
           py::arg("frequencies"),
           py::arg("kinds") = std::vector<std::string>{"forward", "backward"}, py::kw_only(),
           py::arg("warmup") = 1, py::arg("iterations") = 5, py::arg("patience") = 5,
           py::arg("outlier_threshold") = 3.5)
      .def_property_readonly("done", &gpu::FrequencySweep::done)
      .def_property_readonly("frequency", &gpu::FrequencySweep::frequency)
      .def_property_readonly("measuring", &gpu::FrequencySweep::measuring)
      .def(
          "record",
          [](gpu::FrequencySweep& s, const std::string& kind, double time_s, double energy_j) {
            Check(s.Record(ParseKind(kind), {time_s, energy_j}));
          },
          py::arg("kind"), py::arg("time_s"), py::arg("energy_j"))
      .def("end_iteration", [](gpu::FrequencySweep& s) { Check(s.EndIteration()); })
      .def_property_readonly("rows", &gpu::FrequencySweep::rows)
      .def_property_readonly("stopped_early_at", &gpu::FrequencySweep::stopped_early_at)
      .def_property_readonly("progress", &gpu::FrequencySweep::progress);

  // ---- client -------------------------------------------------------------------
  py::class_<client::Client>(m, "Client",
                             "A rank's connection to `perseus serve`; plans are cached, the "
                             "training thread never waits on the network.")
      .def(py::init([](const std::string& server, int64_t job_id, int rank, int pp_rank,
                       int dp_rank, int tp_rank, std::vector<int> frequencies_mhz,
                       const std::string& gpu_name, const std::string& token,
                       double poll_interval_s, gpu::FrequencyController* controller) {
             client::ClientOptions o;
             o.server = server;
             o.job_id = job_id;
             o.rank = rank;
             o.pp_rank = pp_rank;
             o.dp_rank = dp_rank;
             o.tp_rank = tp_rank;
             o.frequencies_mhz = std::move(frequencies_mhz);
             o.gpu_name = gpu_name;
             o.token = token;
             o.poll_interval_s = poll_interval_s;
             if (controller != nullptr)
               o.set_frequency = [controller](int mhz) { controller->Set(mhz); };
             auto created = client::Client::Create(std::move(o));
             if (!created.ok()) throw py::value_error(created.status().message());
             return std::move(created).value();
           }),
           py::arg("server"), py::kw_only(), py::arg("job_id"), py::arg("rank"), py::arg("pp_rank"),
           py::arg("dp_rank") = 0, py::arg("tp_rank") = 0, py::arg("frequencies_mhz"),
           py::arg("gpu_name") = "", py::arg("token") = "", py::arg("poll_interval_s") = 1.0,
           py::arg("controller") = nullptr, py::keep_alive<1, 12>())
      .def(
          "frequency_for",
          [](const client::Client& c, const std::string& kind, int microbatch, int stage) {
            if (kind == kOverlapKind) return c.FrequencyForOverlap(microbatch, stage);
            return c.FrequencyFor(ParseKind(kind, /*overlap=*/true), microbatch, stage);
          },
          py::arg("kind"), py::arg("microbatch"), py::arg("stage") = -1,
          "The planned clock of this computation; kind 'overlap_f_b' finds an overlapped "
          "forward+backward by its forward half. The highest clock without a plan or such a "
          "computation.")
      .def(
          "apply",
          [](client::Client& c, const std::string& kind, int microbatch, int stage) {
            if (kind == kOverlapKind) return c.ApplyOverlap(microbatch, stage);
            return c.Apply(ParseKind(kind, /*overlap=*/true), microbatch, stage);
          },
          py::arg("kind"), py::arg("microbatch"), py::arg("stage") = -1,
          "Sets the planned clock of this computation on the controller; returns it.")
      .def(
          "end_iteration",
          [](client::Client& c, int64_t iteration, double time_s, double energy_j,
             int64_t mismatches, const std::string& phase, int64_t plan_version,
             std::optional<double> profiling_progress) {
            if (mismatches < 0) {
              throw StatusError(Status::InvalidInput(
                  "mismatches must be a non-negative count, got " + std::to_string(mismatches)));
            }
            if (!phase.empty() && phase != "warmup" && phase != "baseline" &&
                phase != "profiling" && phase != "planned") {
              throw StatusError(Status::InvalidInput(
                  "phase must be warmup, baseline, profiling or planned, got '" + phase + "'"));
            }
            if (profiling_progress && !(*profiling_progress >= 0 && *profiling_progress <= 1)) {
              throw StatusError(Status::InvalidInput("profiling_progress must be in [0, 1]"));
            }
            c.EndIteration(iteration, time_s, energy_j, mismatches,
                           {phase, plan_version, profiling_progress.value_or(-1)});
          },
          py::arg("iteration"), py::arg("time_s"), py::arg("energy_j"), py::arg("mismatches") = 0,
          py::arg("phase") = "", py::arg("plan_version") = -1,
          py::arg("profiling_progress") = py::none(),
          "Queues this iteration's report (time, energy, the plan mismatches met in it and, "
          "when given, its phase, the plan version it ran and in-job profiling progress) for "
          "the coordinator and wakes the refresher; never waits on the network.")
      .def(
          "submit_measurements",
          [](client::Client& c, const std::vector<py::dict>& rows, double blocking_power_w) {
            std::vector<client::MeasuredRow> parsed;
            for (const py::dict& row : rows) {
              client::MeasuredRow r;
              r.kind = ParseKind(row["instruction"].cast<std::string>(), /*overlap=*/false);
              r.frequency_mhz = row["frequency_mhz"].cast<int>();
              r.time_s = row["time_s"].cast<double>();
              r.energy_j = row["energy_j"].cast<double>();
              parsed.push_back(r);
            }
            if (parsed.empty()) {
              throw StatusError(Status::InvalidInput("submit_measurements needs rows"));
            }
            c.SubmitMeasurements(parsed, blocking_power_w);
          },
          py::arg("rows"), py::arg("blocking_power_w") = -1.0,
          "Queues this rank's profile: rows {instruction, frequency_mhz, time_s, energy_j} and "
          "the blocking power measured (W; negative: none). Sent by the background thread; "
          "never waits on the network.")
      .def_property_readonly("measurements_status", &client::Client::measurements_status,
                             "none, queued, accepted, or 'refused: <why>'")
      .def(
          "instructions",
          [](const client::Client& c) {
            py::list out;
            for (const auto& i : c.instructions()) {
              planner::Part backward;
              if (i.backward) {
                backward = {i.backward->stage, i.backward->kind, i.backward->microbatch};
              }
              out.append(Step(i.kind, i.microbatch, i.stage, i.frequency_mhz,
                              i.backward ? &backward : nullptr));
            }
            return out;
          },
          "The current plan: this rank's computations in execution order.")
      .def_property_readonly("plan_version", &client::Client::plan_version)
      .def_property_readonly("target_time_s", &client::Client::target_time_s)
      .def_property_readonly("reachable", &client::Client::reachable)
      .def(
          "wait_for_plan",
          [](const client::Client& c, int64_t after, double timeout_s) {
            py::gil_scoped_release release;
            return c.WaitForPlan(after, timeout_s);
          },
          py::arg("after") = 0, py::arg("timeout_s") = 30.0);
}
