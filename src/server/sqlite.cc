#include "src/server/sqlite.h"

#include <memory>

namespace perseus::server {

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    status_ = Status::Internal("sqlite: " + std::string(sqlite3_errmsg(db)) + " in: " + sql);
    stmt_ = nullptr;
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int index, int64_t value) {
  if (stmt_ != nullptr) sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  if (stmt_ != nullptr) sqlite3_bind_double(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, const std::string& value) {
  if (stmt_ != nullptr) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  return *this;
}

bool Statement::Step() {
  if (stmt_ == nullptr) return false;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) status_ = Status::Internal("sqlite: " + std::string(sqlite3_errmsg(db_)));
  return false;
}

Status Statement::Run() {
  if (stmt_ == nullptr) return status_;
  while (Step()) {
  }
  return status_;
}

std::string Statement::Text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  const int size = sqlite3_column_bytes(stmt_, column);
  return text == nullptr ? std::string() : std::string(text, static_cast<size_t>(size));
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  auto db = std::unique_ptr<Database>(new Database);
  if (sqlite3_open_v2(path.c_str(), &db->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    const std::string why = db->db_ != nullptr ? sqlite3_errmsg(db->db_) : "out of memory";
    return Status::InvalidInput(path + ": cannot open the database: " + why);
  }
  sqlite3_busy_timeout(db->db_, 5000);
  // WAL: a commit is one append; synchronous=NORMAL keeps every committed
  // transaction across a killed process (only a power loss may drop the last ones).
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (Status s = db->Exec(pragma); !s.ok())
      return Status::InvalidInput(path + ": " + s.message());
  }
  return db;
}

Database::~Database() { sqlite3_close(db_); }

Status Database::Exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    return Status::Internal("sqlite: " + message);
  }
  return Status::Ok();
}

}  // namespace perseus::server
