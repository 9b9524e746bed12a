package source

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/nodeagent/nodeagent"
	"github.com/nodeagent/nodeagent/redact"
)

// Beside returns the source of the object at rel (a relative path such as
// "rollouts/12.json" or "history/11.json") in the same directory as the
// topology source src, sharing its client: the rollout object and the
// kept documents that publish writes beside the key. It is fetched with
// the same conditional GET as the topology.
func Beside(src nodeagent.TopologySource, rel string) (nodeagent.TopologySource, error) {
	if rel == "" || path.IsAbs(rel) || strings.Contains(rel, "..") {
		return nil, fmt.Errorf("source: %q is not a relative path below the topology's directory", rel)
	}
	switch s := src.(type) {
	case *s3Source:
		loc := s.loc
		loc.key = path.Join(path.Dir(loc.key), rel)
		loc.raw = "s3://" + loc.bucket + "/" + loc.key
		return &s3Source{loc: loc, c: s.c}, nil
	case *fileSource:
		loc := s.loc
		loc.path = path.Join(path.Dir(loc.path), rel)
		loc.raw = "file://" + loc.path
		return &fileSource{loc: loc, log: s.log}, nil
	case *httpSource:
		if s.loc.url.RawQuery != "" {
			// A presigned URL signs one key: nothing beside it can be
			// fetched with it.
			return nil, fmt.Errorf("source: %s: a URL with a query (presigned) names one object only", s.loc.raw)
		}
		u := *s.loc.url
		u.Path = path.Join(path.Dir(u.Path), rel)
		u.RawPath = ""
		loc := s.loc
		loc.url, loc.raw = &u, redact.URL((&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
		return &httpSource{loc: loc, c: s.c}, nil
	}
	return nil, fmt.Errorf("source: %s: no objects beside this kind of source", src.String())
}
