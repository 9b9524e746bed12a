package fleet

import (
	"context"
	"time"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/rollout"
	"github.com/nodeagent/nodeagent/source"
)

// Rollout is the staged rollout of the current serial as the Snapshot
// shows it: the rollout object, each wave's nodes done / pending / failed,
// and whether an operator's command is following it.
type Rollout struct {
	rollout.Rollout
	// URL is where the rollout object lives.
	URL   string              `json:"url"`
	Tally []rollout.WaveTally `json:"tally"`
	// Unattended: rolling, but the operator command's heartbeat is older
	// than rollout.HeartbeatStale: nothing advances it (run `nodeagent
	// rollout resume`).
	Unattended          bool    `json:"unattended"`
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
}

// RolloutFleet is the fleet as rollout.Step sees it.
func RolloutFleet(s *Snapshot) rollout.Fleet {
	f := rollout.Fleet{Serial: s.Serial}
	for _, n := range s.Nodes {
		if n.Report == nil {
			continue
		}
		f.Nodes = append(f.Nodes, rollout.Node{InstanceID: n.InstanceID, Name: n.Name, Live: n.Live, Report: n.Report})
	}
	return f
}

// rolloutView joins the rollout object with the snapshot's nodes.
func rolloutView(s *Snapshot, r *rollout.Rollout, url string, now time.Time) *Rollout {
	tally, failed := rollout.Tally(r, RolloutFleet(s))
	v := &Rollout{Rollout: *r, URL: url, Tally: tally, Unattended: r.Unattended(now),
		HeartbeatAgeSeconds: max(0, now.Sub(r.Heartbeat).Seconds())}
	if r.State == rollout.StateRolling {
		v.Failed = failed // as the reports say now
	}
	return v
}

// rolloutReader reads the rollout object of the current serial with a
// conditional GET, through a source beside the topology.
type rolloutReader struct {
	serial int64
	src    nodeagent.TopologySource
	etag   string
	obj    *rollout.Rollout
}

// read returns the rollout object of serial, nil when there is none (or
// the topology's source has nothing beside it).
func (rr *rolloutReader) read(ctx context.Context, top Reader, serial int64, digest string) (*rollout.Rollout, string, error) {
	ts, ok := top.(nodeagent.TopologySource)
	if !ok {
		return nil, "", nil
	}
	if rr.src == nil || rr.serial != serial {
		src, err := source.Beside(ts, rollout.Rel(serial))
		if err != nil {
			return nil, "", nil
		}
		*rr = rolloutReader{serial: serial, src: src}
	}
	f, err := rr.src.Fetch(ctx, rr.etag)
	switch {
	case err != nil && source.IsNotFound(err):
		rr.etag, rr.obj = "", nil
		return nil, "", nil
	case err != nil:
		return nil, "", err
	case !f.NotModified:
		obj, err := rollout.Decode(f.Body, rr.src.String())
		if err != nil {
			return nil, "", err
		}
		rr.etag, rr.obj = f.ETag, obj
	}
	if rr.obj == nil || rr.obj.DocumentSHA256 != digest {
		return nil, "", nil
	}
	return rr.obj, rr.src.String(), nil
}
