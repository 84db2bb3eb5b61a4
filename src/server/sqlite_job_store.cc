#include "src/server/sqlite_job_store.h"

#include <map>

namespace perseus::server {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, config TEXT NOT NULL, state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '', profile_csv TEXT NOT NULL DEFAULT '',
  all_max_time REAL NOT NULL DEFAULT 0, all_max_energy REAL NOT NULL DEFAULT 0,
  solve_seconds REAL NOT NULL DEFAULT 0, planning_attempts INTEGER NOT NULL DEFAULT 0,
  warnings TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS ranks(
  job_id INTEGER NOT NULL, rank INTEGER NOT NULL, info TEXT NOT NULL, PRIMARY KEY(job_id, rank));
CREATE TABLE IF NOT EXISTS measurements(
  job_id INTEGER NOT NULL, stage INTEGER NOT NULL, tp_rank INTEGER NOT NULL, rows TEXT NOT NULL,
  blocking_power REAL NOT NULL DEFAULT -1, PRIMARY KEY(job_id, stage, tp_rank));
CREATE TABLE IF NOT EXISTS frontiers(
  job_id INTEGER PRIMARY KEY, frontier_csv TEXT NOT NULL, computations_csv TEXT NOT NULL,
  plans_csv TEXT NOT NULL, problem_json TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS pipelines(
  job_id INTEGER NOT NULL, pipeline INTEGER NOT NULL, version INTEGER NOT NULL,
  point INTEGER NOT NULL, target_time REAL NOT NULL, PRIMARY KEY(job_id, pipeline));
CREATE TABLE IF NOT EXISTS stragglers(
  job_id INTEGER NOT NULL, pipeline INTEGER NOT NULL, slowdown REAL NOT NULL,
  iteration_time REAL NOT NULL, source TEXT NOT NULL DEFAULT 'manual',
  reference_time REAL NOT NULL DEFAULT 0, PRIMARY KEY(job_id, pipeline));
CREATE TABLE IF NOT EXISTS iterations(
  job_id INTEGER NOT NULL, rank INTEGER NOT NULL, iteration INTEGER NOT NULL,
  time_s REAL NOT NULL, energy_j REAL NOT NULL, mismatches INTEGER NOT NULL DEFAULT 0,
  phase TEXT NOT NULL DEFAULT '', pipeline INTEGER NOT NULL DEFAULT -1,
  plan_version INTEGER NOT NULL DEFAULT -1, PRIMARY KEY(job_id, rank, iteration));
)sql";

}  // namespace

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path, Log log) {
  auto db = Database::Open(path);
  if (!db.ok()) return db.status();
  auto store = std::unique_ptr<SqliteJobStore>(new SqliteJobStore);
  store->db_ = std::move(db).value();
  store->log_ = std::move(log);
  PERSEUS_RETURN_IF_ERROR(store->db_->Exec(kSchema));
  PERSEUS_RETURN_IF_ERROR(store->Migrate());
  return store;
}

Status SqliteJobStore::Migrate() {
  // Columns later versions added, each with the value older rows take: plan mismatches in
  // iteration reports (older reports had none), the source and reference time of stragglers
  // (those stored before straggler detection are manual ones), the phase, pipeline and plan
  // version of iteration reports (unknown before measured savings: left out of them), the
  // blocking power measured with a rank's profile (-1: none), the planning problem stored with
  // a frontier (none: plans are the frontier's points as stored), the planning attempts of a
  // job (none before: 0), a job's warnings (none shown before: '').
  struct Added {
    const char* table;
    const char* column;
    const char* definition;
  };
  static constexpr Added kAdded[] = {
      {"iterations", "mismatches", "INTEGER NOT NULL DEFAULT 0"},
      {"stragglers", "source", "TEXT NOT NULL DEFAULT 'manual'"},
      {"stragglers", "reference_time", "REAL NOT NULL DEFAULT 0"},
      {"iterations", "phase", "TEXT NOT NULL DEFAULT ''"},
      {"iterations", "pipeline", "INTEGER NOT NULL DEFAULT -1"},
      {"iterations", "plan_version", "INTEGER NOT NULL DEFAULT -1"},
      {"measurements", "blocking_power", "REAL NOT NULL DEFAULT -1"},
      {"frontiers", "problem_json", "TEXT NOT NULL DEFAULT ''"},
      {"jobs", "planning_attempts", "INTEGER NOT NULL DEFAULT 0"},
      {"jobs", "warnings", "TEXT NOT NULL DEFAULT ''"},
  };
  for (const Added& added : kAdded) {
    Statement columns(db_->handle(),
                      std::string("SELECT name FROM pragma_table_info('") + added.table + "')");
    bool present = false;
    while (columns.Step()) present = present || columns.Text(0) == added.column;
    if (!columns.status().ok()) return columns.status();
    if (present) continue;
    if (log_) {
      log_(std::string("database: adding the ") + added.column + " column to " + added.table);
    }
    if (Status s = db_->Exec(std::string("ALTER TABLE ") + added.table + " ADD COLUMN " +
                             added.column + " " + added.definition);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

Status SqliteJobStore::Begin() { return db_->Exec("BEGIN IMMEDIATE"); }

Status SqliteJobStore::Commit() {
  Status s = db_->Exec("COMMIT");
  if (!s.ok()) (void)db_->Exec("ROLLBACK");  // never leave a transaction open
  return s;
}

void SqliteJobStore::Rollback() { (void)db_->Exec("ROLLBACK"); }

Result<std::vector<StoredJob>> SqliteJobStore::LoadAll() {
  std::vector<StoredJob> jobs;
  std::map<int64_t, size_t> index;
  Statement q(db_->handle(),
              "SELECT id, config, state, reason, profile_csv, all_max_time, all_max_energy, "
              "solve_seconds, planning_attempts, warnings FROM jobs ORDER BY id");
  while (q.Step()) {
    StoredJob job;
    job.id = q.Int(0);
    job.config_json = q.Text(1);
    job.row = {q.Text(2),   q.Text(3),   q.Text(4), q.Double(5),
               q.Double(6), q.Double(7), q.Int(8),  q.Text(9)};
    index[job.id] = jobs.size();
    jobs.push_back(std::move(job));
  }
  PERSEUS_RETURN_IF_ERROR(q.status());
  auto find = [&](int64_t id) -> StoredJob* {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &jobs[it->second];
  };
  Statement ranks(db_->handle(), "SELECT job_id, info FROM ranks ORDER BY job_id, rank");
  while (ranks.Step()) {
    if (StoredJob* job = find(ranks.Int(0))) job->rank_infos.push_back(ranks.Text(1));
  }
  PERSEUS_RETURN_IF_ERROR(ranks.status());
  Statement measured(db_->handle(),
                     "SELECT job_id, stage, tp_rank, rows, blocking_power FROM measurements "
                     "ORDER BY job_id, stage, tp_rank");
  while (measured.Step()) {
    if (StoredJob* job = find(measured.Int(0))) {
      job->measurements.push_back(
          {measured.Int(1), measured.Int(2), measured.Text(3), measured.Double(4)});
    }
  }
  PERSEUS_RETURN_IF_ERROR(measured.status());
  Statement frontiers(db_->handle(),
                      "SELECT job_id, frontier_csv, computations_csv, plans_csv, problem_json "
                      "FROM frontiers");
  while (frontiers.Step()) {
    if (StoredJob* job = find(frontiers.Int(0))) {
      job->frontier = planner::FrontierFiles{frontiers.Text(1), frontiers.Text(2),
                                             frontiers.Text(3), frontiers.Text(4)};
    }
  }
  PERSEUS_RETURN_IF_ERROR(frontiers.status());
  Statement pipelines(db_->handle(),
                      "SELECT job_id, pipeline, version, point, target_time FROM pipelines "
                      "ORDER BY job_id, pipeline");
  while (pipelines.Step()) {
    if (StoredJob* job = find(pipelines.Int(0))) {
      job->pipelines.push_back(
          {pipelines.Int(1), pipelines.Int(2), pipelines.Int(3), pipelines.Double(4)});
    }
  }
  PERSEUS_RETURN_IF_ERROR(pipelines.status());
  Statement stragglers(db_->handle(),
                       "SELECT job_id, pipeline, slowdown, iteration_time, source, reference_time "
                       "FROM stragglers ORDER BY job_id, pipeline");
  while (stragglers.Step()) {
    if (StoredJob* job = find(stragglers.Int(0))) {
      job->stragglers.push_back({stragglers.Int(1), stragglers.Double(2), stragglers.Double(3),
                                 stragglers.Text(4), stragglers.Double(5)});
    }
  }
  PERSEUS_RETURN_IF_ERROR(stragglers.status());
  Statement reports(db_->handle(),
                    "SELECT job_id, COUNT(*), COALESCE(SUM(energy_j),0), COALESCE(SUM(time_s),0), "
                    "COALESCE(MAX(iteration),-1), COALESCE(SUM(mismatches),0), "
                    "COALESCE(SUM(mismatches > 0),0) FROM iterations GROUP BY job_id");
  while (reports.Step()) {
    if (StoredJob* job = find(reports.Int(0))) {
      job->iterations = {reports.Int(1), reports.Double(2), reports.Double(3),
                         reports.Int(4), reports.Int(5),    reports.Int(6)};
    }
  }
  PERSEUS_RETURN_IF_ERROR(reports.status());
  return jobs;
}

Result<int64_t> SqliteJobStore::InsertJob(const std::string& config_json, const JobRowValues& row) {
  PERSEUS_RETURN_IF_ERROR(Statement(db_->handle(), "INSERT INTO jobs(config, state) VALUES(?, ?)")
                              .Bind(1, config_json)
                              .Bind(2, row.state)
                              .Run());
  const int64_t id = sqlite3_last_insert_rowid(db_->handle());
  PERSEUS_RETURN_IF_ERROR(SaveJobRow(id, row));
  return id;
}

Status SqliteJobStore::SaveJobRow(int64_t id, const JobRowValues& row) {
  return Statement(db_->handle(),
                   "UPDATE jobs SET state=?, reason=?, profile_csv=?, all_max_time=?, "
                   "all_max_energy=?, solve_seconds=?, planning_attempts=?, warnings=? WHERE id=?")
      .Bind(1, row.state)
      .Bind(2, row.reason)
      .Bind(3, row.profile_csv)
      .Bind(4, row.all_max_time_s)
      .Bind(5, row.all_max_energy_j)
      .Bind(6, row.solve_seconds)
      .Bind(7, row.planning_attempts)
      .Bind(8, row.warnings)
      .Bind(9, id)
      .Run();
}

Status SqliteJobStore::DeleteJob(int64_t id) {
  for (const char* table :
       {"ranks", "measurements", "frontiers", "pipelines", "stragglers", "iterations"}) {
    PERSEUS_RETURN_IF_ERROR(
        Statement(db_->handle(), std::string("DELETE FROM ") + table + " WHERE job_id=?")
            .Bind(1, id)
            .Run());
  }
  return Statement(db_->handle(), "DELETE FROM jobs WHERE id=?").Bind(1, id).Run();
}

Status SqliteJobStore::InsertRank(int64_t job, int64_t rank, const std::string& info_json) {
  return Statement(db_->handle(), "INSERT INTO ranks(job_id, rank, info) VALUES(?, ?, ?)")
      .Bind(1, job)
      .Bind(2, rank)
      .Bind(3, info_json)
      .Run();
}

Status SqliteJobStore::PutMeasurement(int64_t job, const StoredMeasurement& m) {
  return Statement(db_->handle(),
                   "INSERT OR REPLACE INTO measurements(job_id, stage, tp_rank, rows, "
                   "blocking_power) VALUES(?,?,?,?,?)")
      .Bind(1, job)
      .Bind(2, m.stage)
      .Bind(3, m.tp_rank)
      .Bind(4, m.rows)
      .Bind(5, m.blocking_power)
      .Run();
}

Status SqliteJobStore::PutFrontier(int64_t job, const planner::FrontierFiles& files) {
  return Statement(db_->handle(),
                   "INSERT OR REPLACE INTO frontiers(job_id, frontier_csv, computations_csv, "
                   "plans_csv, problem_json) VALUES(?,?,?,?,?)")
      .Bind(1, job)
      .Bind(2, files.frontier_csv)
      .Bind(3, files.computations_csv)
      .Bind(4, files.plans_csv)
      .Bind(5, files.problem_json)
      .Run();
}

Status SqliteJobStore::PutPipeline(int64_t job, const StoredPipeline& p) {
  return Statement(db_->handle(),
                   "INSERT OR REPLACE INTO pipelines(job_id, pipeline, version, point, "
                   "target_time) VALUES(?,?,?,?,?)")
      .Bind(1, job)
      .Bind(2, p.pipeline)
      .Bind(3, p.version)
      .Bind(4, p.point)
      .Bind(5, p.target_time_s)
      .Run();
}

Status SqliteJobStore::PutStraggler(int64_t job, const StoredStraggler& s) {
  return Statement(db_->handle(),
                   "INSERT OR REPLACE INTO stragglers(job_id, pipeline, slowdown, "
                   "iteration_time, source, reference_time) VALUES(?,?,?,?,?,?)")
      .Bind(1, job)
      .Bind(2, s.pipeline)
      .Bind(3, s.slowdown)
      .Bind(4, s.iteration_time_s)
      .Bind(5, s.source)
      .Bind(6, s.reference_time_s)
      .Run();
}

Status SqliteJobStore::DeleteStraggler(int64_t job, int64_t pipeline) {
  return Statement(db_->handle(), "DELETE FROM stragglers WHERE job_id=? AND pipeline=?")
      .Bind(1, job)
      .Bind(2, pipeline)
      .Run();
}

Status SqliteJobStore::PutIteration(int64_t job, const StoredIteration& it) {
  return Statement(db_->handle(),
                   "INSERT OR REPLACE INTO iterations(job_id, rank, iteration, time_s, "
                   "energy_j, mismatches, phase, pipeline, plan_version) "
                   "VALUES(?,?,?,?,?,?,?,?,?)")
      .Bind(1, job)
      .Bind(2, it.rank)
      .Bind(3, it.iteration)
      .Bind(4, it.time_s)
      .Bind(5, it.energy_j)
      .Bind(6, it.mismatches)
      .Bind(7, it.phase)
      .Bind(8, it.pipeline)
      .Bind(9, it.plan_version)
      .Run();
}

Result<std::optional<StoredIteration>> SqliteJobStore::GetIteration(int64_t job, int64_t rank,
                                                                    int64_t iteration) {
  Statement q(db_->handle(),
              "SELECT time_s, energy_j, mismatches, phase, pipeline, plan_version FROM iterations "
              "WHERE job_id=? AND rank=? AND iteration=?");
  q.Bind(1, job).Bind(2, rank).Bind(3, iteration);
  std::optional<StoredIteration> out;
  if (q.Step()) {
    out = StoredIteration{rank,     iteration, q.Double(0), q.Double(1),
                          q.Int(2), q.Text(3), q.Int(4),    q.Int(5)};
  }
  PERSEUS_RETURN_IF_ERROR(q.status());
  return out;
}

Result<std::vector<PhaseTotals>> SqliteJobStore::MeasuredPhases(int64_t job,
                                                                int64_t ranks_per_pipeline) {
  Statement q(db_->handle(),
              "SELECT pipeline, phase, COUNT(*), SUM(e), SUM(t) FROM ("
              "SELECT pipeline, phase, iteration, SUM(energy_j) AS e, MAX(time_s) AS t, "
              "COUNT(*) AS n FROM iterations WHERE job_id=? AND pipeline >= 0 AND "
              "phase IN ('baseline', 'planned') GROUP BY pipeline, iteration, phase) "
              "WHERE n = ? GROUP BY pipeline, phase ORDER BY pipeline, phase");
  q.Bind(1, job).Bind(2, ranks_per_pipeline);
  std::vector<PhaseTotals> out;
  while (q.Step()) out.push_back({q.Int(0), q.Text(1), q.Int(2), q.Double(3), q.Double(4)});
  PERSEUS_RETURN_IF_ERROR(q.status());
  return out;
}

}  // namespace perseus::server
