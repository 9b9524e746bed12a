package nodeagent

// Log attribute keys: every package logs with these, so one concept has one
// name in the journal and in log queries ("error", never "err"; the
// instance is always "instance_id"). Durations are milliseconds.
const (
	// What failed and why.
	LogKeyError  = "error"  // err.Error()
	LogKeyReason = "reason" // why something is done (or not)
	LogKeyOutput = "output" // a command's output

	// The node.
	LogKeyInstance  = "instance_id"
	LogKeyPrivateIP = "private_ip"
	LogKeyAZ        = "az"
	LogKeyOS        = "os"
	LogKeyMemoryMB  = "memory_mb"
	LogKeyBootID    = "boot_id"
	LogKeyGroup     = "group" // Auto Scaling group
	LogKeyHook      = "hook"  // lifecycle hook name
	LogKeyResult    = "result"

	// An apply.
	LogKeyApply    = "apply_id"
	LogKeyStep     = "step"
	LogKeySerial   = "serial"
	LogKeySource   = "source" // where the topology comes from
	LogKeyStage    = "stage"  // journal stage
	LogKeyFiles    = "files"
	LogKeyActions  = "actions"
	LogKeyReleases = "releases"
	LogKeyOwed     = "owed"
	LogKeyReady    = "ready"

	// Files, services, releases.
	LogKeyPath     = "path" // a host path (file or directory)
	LogKeyService  = "service"
	LogKeyUnit     = "unit"
	LogKeyAction   = "action"
	LogKeyProduct  = "product"
	LogKeyRelease  = "release"  // a release id
	LogKeyPrevious = "previous" // what is replaced or gone back to: a release id, a serial
	LogKeyURL      = "url"
	LogKeyBytes    = "bytes"
	LogKeyPID      = "pid"
	LogKeyArgv     = "argv"
	LogKeySignal   = "signal"

	// Time and retries.
	LogKeyDuration = "duration_ms"
	LogKeyAttempt  = "attempt"
	LogKeyAttempts = "attempts" // how many attempts in all (or so far)
	LogKeyWait     = "wait"
	LogKeyDeadline = "deadline"

	// Where a record comes from.
	LogKeyComponent = "component"
	LogKeyEndpoint  = "endpoint"
	LogKeyCheck     = "check" // a smoke check's name

	// Keys of one log record each.
	LogKeyCommit         = "commit"
	LogKeyDrainTime      = "drain_time"
	LogKeyDriver         = "driver"
	LogKeyEvent          = "event"
	LogKeyExisted        = "existed"
	LogKeyFrom           = "from"
	LogKeyGrace          = "grace"
	LogKeyListen         = "listen"
	LogKeyOp             = "op"
	LogKeyPercent        = "percent"
	LogKeyPidfile        = "pidfile"
	LogKeyProc           = "proc"
	LogKeyRate           = "rate_bytes_per_second"
	LogKeyRecordedBootID = "recorded_boot_id"
	LogKeyRefresh        = "refresh"
	LogKeyRemoved        = "removed"
	LogKeyReport         = "report"
	LogKeyRestoreError   = "restore_error"
	LogKeyRetryUntil     = "retry_until"
	LogKeySize           = "size"
	LogKeySplay          = "splay"
	LogKeyStarted        = "started"
	LogKeyState          = "state"
	LogKeyTotal          = "total" // bytes expected in all
	LogKeyVersion        = "version"
)
