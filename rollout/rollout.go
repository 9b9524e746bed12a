// Package rollout is the staged rollout of one topology serial: the small
// object beside the topology key that says how far the serial has gone
// (rollouts/<serial>.json: waves, bake, max_failed, the current wave,
// rolling / halted / done / superseded), the stable hash that puts each
// node in a wave, and Step, the pure state machine the operator's
// `nodeagent rollout` command runs over fleet snapshots.
//
// The document of each serial is immutable; only the rollout object
// changes, always with S3 conditional writes (Store). Nodes read it with a
// conditional GET while they hold the serial back and apply it once their
// wave is reached (Allowed). Nothing on the nodes advances a rollout: if
// the operator's command dies, the rollout stays at its wave, and its
// heartbeat (Heartbeat) goes stale for everyone to see.
package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Schema is the version of the rollout object's encoding.
const Schema = 1

// States of a rollout.
const (
	// StateRolling: nodes in the waves up to Wave apply the serial; the
	// others keep what they have.
	StateRolling = "rolling"
	// StateHalted: too many nodes failed; no node that has not applied
	// the serial applies it.
	StateHalted = "halted"
	// StateDone: every node applies the serial.
	StateDone = "done"
	// StateSuperseded: a newer serial was published; the rollout is over.
	StateSuperseded = "superseded"
)

// buckets is the resolution of a wave share: a node's bucket is in
// [0, buckets), and a wave of p percent takes buckets below p*buckets/100.
const buckets = 10000

// MaxObject bounds a rollout object read back.
const MaxObject = 1 << 20

// The operator's command writes its heartbeat into the rollout object every
// HeartbeatEvery (unless told otherwise) while it follows the rollout; after
// StaleBeats heartbeats missed the rollout is shown as unattended.
const (
	HeartbeatEvery = 10 * time.Second
	StaleBeats     = 6
)

// Rollout is the rollout object of one serial.
type Rollout struct {
	Schema int   `json:"schema"`
	Serial int64 `json:"serial"`
	// Previous is the serial published before it: what nodes outside
	// the current wave keep, and what a booting one converges to.
	Previous int64 `json:"previous"`
	// DocumentSHA256 is the hex SHA-256 of the published document. A
	// node ignores a rollout object whose digest is not the document's
	// (a publish that lost its race left it behind).
	DocumentSHA256 string `json:"document_sha256"`
	// Waves are cumulative shares of the fleet in percent, ascending, the
	// last 100: [1, 10, 50, 100].
	Waves       []int   `json:"waves"`
	BakeSeconds float64 `json:"bake_seconds"`
	// MaxFailed is how many nodes may fail to apply the serial before the
	// rollout halts (halt when more fail).
	MaxFailed int `json:"max_failed"`
	// Wave is the index in Waves of the current wave.
	Wave int `json:"wave"`
	// WaveStarted is when the current wave began; WaveComplete when its
	// last node reported the serial applied and ready (zero until then):
	// the bake runs from WaveComplete.
	WaveStarted  time.Time `json:"wave_started"`
	WaveComplete time.Time `json:"wave_complete,omitzero"`
	State        string    `json:"state"`
	Why          string    `json:"why,omitempty"`
	// Failed are the nodes that reported a failed apply of the serial.
	Failed []Failure `json:"failed,omitempty"`
	// AutoRollback: on halting, the operator's command publishes the
	// previous document as a new serial.
	AutoRollback bool `json:"auto_rollback,omitempty"`
	// RolledBackTo is the serial that auto-rollback published.
	RolledBackTo int64     `json:"rolled_back_to,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Heartbeat is the last sign of life of the operator's command that
	// follows the rollout (Operator names it: host and pid).
	Heartbeat time.Time `json:"heartbeat"`
	Operator  string    `json:"operator,omitempty"`
	// HeartbeatEverySeconds is how often that command writes the
	// heartbeat (default HeartbeatEvery); the rollout is unattended after
	// StaleBeats of them without one.
	HeartbeatEverySeconds float64 `json:"heartbeat_every_seconds,omitempty"`
}

// Failure is a node that failed to apply the serial.
type Failure struct {
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name,omitempty"`
	Wave       int       `json:"wave"`
	At         time.Time `json:"at"`
	Error      string    `json:"error"`
}

// Bake is the bake time.
func (r *Rollout) Bake() time.Duration { return time.Duration(r.BakeSeconds * float64(time.Second)) }

// Active reports whether nodes still hold the serial back: rolling or
// halted.
func (r *Rollout) Active() bool { return r.State == StateRolling || r.State == StateHalted }

// Unattended reports whether a rolling rollout has no operator command
// following it: its heartbeat is older than StaleBeats heartbeats at now.
func (r *Rollout) Unattended(now time.Time) bool {
	return r.State == StateRolling && now.Sub(r.Heartbeat) > StaleBeats*r.HeartbeatInterval()
}

// HeartbeatInterval is how often the operator's command writes its
// heartbeat.
func (r *Rollout) HeartbeatInterval() time.Duration {
	if r.HeartbeatEverySeconds <= 0 {
		return HeartbeatEvery
	}
	return time.Duration(r.HeartbeatEverySeconds * float64(time.Second))
}

// Digest is the hex SHA-256 of a document, as DocumentSHA256 holds it.
func Digest(body []byte) string {
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}

// Key is where the rollout object of serial lives for the topology key:
// rollouts/<serial>.json in the key's directory (beside history/).
func Key(topologyKey string, serial int64) string {
	return path.Join(path.Dir(topologyKey), "rollouts", strconv.FormatInt(serial, 10)+".json")
}

// Rel is Key relative to the topology key's directory.
func Rel(serial int64) string { return "rollouts/" + strconv.FormatInt(serial, 10) + ".json" }

// HistoryRel is where publish keeps the document of serial, relative to the
// directory of the topology key named topologyKey (publish.HistoryKey):
// history/<serial>.json, or with the key's extension for a YAML key.
func HistoryRel(topologyKey string, serial int64) string {
	ext := strings.ToLower(path.Ext(topologyKey))
	if ext != ".yaml" && ext != ".yml" {
		ext = ".json"
	} else {
		ext = path.Ext(topologyKey)
	}
	return "history/" + strconv.FormatInt(serial, 10) + ext
}

// Bucket is a node's place in [0, 10000) for the rollout of serial: the
// first 8 bytes of SHA-256(instance id "/" serial), big-endian, modulo
// 10000. Stable for a node and a serial, independent of the AZ, and
// different for each serial, so the first wave is other nodes each time.
func Bucket(instanceID string, serial int64) int {
	s := sha256.Sum256([]byte(instanceID + "/" + strconv.FormatInt(serial, 10)))
	return int(binary.BigEndian.Uint64(s[:8]) % buckets)
}

// WaveOf is the index of the wave a node belongs to: the first wave whose
// cumulative share takes its bucket.
func WaveOf(instanceID string, serial int64, waves []int) int {
	b := Bucket(instanceID, serial)
	for i, p := range waves {
		if b < p*buckets/100 {
			return i
		}
	}
	return len(waves) - 1
}

// Allowed reports whether the node may apply the rollout's serial now:
// always when done, when rolling only if its wave has been reached, never
// when halted or superseded (a node already on the serial keeps it: that
// is the caller's business).
func (r *Rollout) Allowed(instanceID string) bool {
	switch r.State {
	case StateDone:
		return true
	case StateRolling:
		return WaveOf(instanceID, r.Serial, r.Waves) <= r.Wave
	}
	return false
}

// Strategy is how a rollout goes: from the publish flags.
type Strategy struct {
	Waves        []int
	Bake         time.Duration
	MaxFailed    int
	AutoRollback bool
}

// ErrStrategy is wrapped by a strategy that cannot be used.
var ErrStrategy = errors.New("bad rollout strategy")

// ParseWaves reads "1,10,50,100": cumulative percentages, strictly
// ascending, each in 1..100, the last 100.
func ParseWaves(s string) ([]int, error) {
	var waves []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSuffix(strings.TrimSpace(f), "%")
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("rollout: waves %q: %q is not a whole percentage: %w", s, f, ErrStrategy)
		}
		waves = append(waves, p)
	}
	if err := checkWaves(waves); err != nil {
		return nil, fmt.Errorf("rollout: waves %q: %w", s, err)
	}
	return waves, nil
}

func checkWaves(waves []int) error {
	if len(waves) == 0 {
		return fmt.Errorf("no waves: %w", ErrStrategy)
	}
	for i, p := range waves {
		if p < 1 || p > 100 {
			return fmt.Errorf("%d%% is not in 1..100: %w", p, ErrStrategy)
		}
		if i > 0 && p <= waves[i-1] {
			return fmt.Errorf("the shares are cumulative and must rise (%d%% after %d%%): %w", p, waves[i-1], ErrStrategy)
		}
	}
	if waves[len(waves)-1] != 100 {
		return fmt.Errorf("the last wave must be 100%% (every node), not %d%%: %w", waves[len(waves)-1], ErrStrategy)
	}
	return nil
}

// New is the rollout object that starts a rollout of serial (body is its
// document) after previous, at now.
func New(st Strategy, serial, previous int64, body []byte, now time.Time) (*Rollout, error) {
	if err := checkWaves(st.Waves); err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	if st.MaxFailed < 0 || st.Bake < 0 {
		return nil, fmt.Errorf("rollout: max_failed and bake must not be negative: %w", ErrStrategy)
	}
	now = now.UTC()
	return &Rollout{Schema: Schema, Serial: serial, Previous: previous, DocumentSHA256: Digest(body),
		Waves: st.Waves, BakeSeconds: st.Bake.Seconds(), MaxFailed: st.MaxFailed, AutoRollback: st.AutoRollback,
		State: StateRolling, WaveStarted: now, UpdatedAt: now, Heartbeat: now}, nil
}

// Errors of Decode.
var (
	ErrCorrupt = errors.New("not a rollout object")
	ErrSchema  = errors.New("unknown rollout schema")
)

// Decode reads a rollout object strictly.
func Decode(body []byte, name string) (*Rollout, error) {
	if len(body) > MaxObject {
		return nil, fmt.Errorf("rollout: %s is larger than %d bytes: %w", name, MaxObject, ErrCorrupt)
	}
	var r Rollout
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("rollout: %s: %w: %w", name, ErrCorrupt, err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("rollout: %s has schema %d, this agent reads %d: %w (upgrade the agent)", name, r.Schema, Schema, ErrSchema)
	}
	if err := checkWaves(r.Waves); err != nil {
		return nil, fmt.Errorf("rollout: %s: %w: %w", name, ErrCorrupt, err)
	}
	switch r.State {
	case StateRolling, StateHalted, StateDone, StateSuperseded:
	default:
		return nil, fmt.Errorf("rollout: %s: state %q: %w", name, r.State, ErrCorrupt)
	}
	if r.Wave < 0 || r.Wave >= len(r.Waves) || r.Serial <= 0 {
		return nil, fmt.Errorf("rollout: %s: wave %d of %d, serial %d: %w", name, r.Wave, len(r.Waves), r.Serial, ErrCorrupt)
	}
	return &r, nil
}

// Encode is the object's JSON.
func (r *Rollout) Encode() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}
