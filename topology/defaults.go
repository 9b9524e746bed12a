package topology

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nodeagent/nodeagent"
)

// Documented defaults (SPEC section 3 and the nodeagent types).
const (
	DefaultHealthPath        = "/nodeagent-health"
	DefaultApachePort        = 80
	DefaultApacheBind        = nodeagent.BindAll
	DefaultDatabasePort      = 3306
	DefaultCachePort         = 11211
	DefaultSessions          = nodeagent.SessionsFiles
	DefaultSmokeStatus       = 200
	DefaultPHPMemoryLimit    = "128M"
	DefaultMemcachedPort     = 11211
	DefaultMemcachedMaxConns = 1024
)

// ApplyDefaults fills the documented defaults in place. A role that runs
// memcached always ends up with MemcachedSettings (MemoryMB stays 0: size
// from the machine's memory). Values sized from memory (memcached memory,
// PHP-FPM max_children, Apache MaxRequestWorkers) stay 0 for the roles
// package to derive. Applying defaults twice changes nothing.
func ApplyDefaults(t *nodeagent.Topology) {
	if t == nil {
		return
	}
	if t.Health.Path == "" {
		t.Health.Path = DefaultHealthPath
	}
	if t.Apache.Port == 0 {
		t.Apache.Port = DefaultApachePort
	}
	if t.Apache.Bind == "" {
		t.Apache.Bind = DefaultApacheBind
	}
	for name, r := range t.Roles {
		if r.Memcached == nil && !slices.Contains(r.Services, nodeagent.ServiceMemcached) {
			continue
		}
		m := nodeagent.MemcachedSettings{}
		if r.Memcached != nil {
			m = *r.Memcached // never write through a pointer the caller may share
		}
		if m.Port == 0 {
			m.Port = DefaultMemcachedPort
		}
		if m.MaxConnections == 0 {
			m.MaxConnections = DefaultMemcachedMaxConns
		}
		r.Memcached = &m
		t.Roles[name] = r
	}
	for name, p := range t.Products {
		if p.Database.Port == 0 {
			p.Database.Port = DefaultDatabasePort
		}
		if p.Cache != nil {
			c := *p.Cache
			if c.Port == 0 {
				c.Port = DefaultCachePort
			}
			p.Cache = &c
		}
		if p.Sessions == "" {
			p.Sessions = DefaultSessions
		}
		if p.PHP.MemoryLimit == "" {
			p.PHP.MemoryLimit = DefaultPHPMemoryLimit
		}
		if len(p.Smoke) > 0 {
			p.Smoke = slices.Clone(p.Smoke)
			for i := range p.Smoke {
				if p.Smoke[i].Status == 0 {
					p.Smoke[i].Status = DefaultSmokeStatus
				}
			}
		}
		t.Products[name] = p
	}
}

// Load decodes a document strictly, validates it, and applies the
// defaults: the one call for "is this a document we may apply".
func Load(data []byte, name string, format nodeagent.Format) (*nodeagent.Topology, error) {
	t, err := Decode(data, name, format)
	if err != nil {
		return nil, err
	}
	if err := Validate(t); err != nil {
		return nil, &InvalidError{Serial: t.Serial, Err: fmt.Errorf("topology %s: %w", name, err)}
	}
	ApplyDefaults(t)
	return t, nil
}

// InvalidError is a document that failed validation, or decoding with a
// readable top-level serial. It carries that serial, so that a refused push
// still shows as seen (serial_seen above serial_applied) without the caller
// decoding it again.
type InvalidError struct {
	Serial int64
	Err    error
}

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// SerialOf is the serial of the document a Load error is about, when it
// decoded far enough to have one.
func SerialOf(err error) (int64, bool) {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Serial, true
	}
	return 0, false
}
