package render

import (
	"bytes"
	"embed"
	"fmt"
	"testing"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// oracle parses the templates the renderers were written from.
func oracle(t *testing.T) *template.Template {
	t.Helper()
	return template.Must(template.New("render").
		Option("missingkey=error").
		Funcs(template.FuncMap{"php": PHPQuote, "regex": regex}).
		ParseFS(templateFS, "templates/*.tmpl"))
}

// Each renderer writes exactly what its template writes for the same data:
// the templates are the reviewable form of the files, the code what ships
// (text/template's reflection keeps ~9 MB of unused SDK methods in the
// binary).
func TestTextMatchesTemplates(t *testing.T) {
	tmpl := oracle(t)
	health := Health{Path: "/nodeagent-health", ReadyFile: "/var/lib/nodeagent/health/ready"}
	health2 := Health{Path: "/h.ok", ReadyFile: "/srv/state/ready file"}
	mods := []module{{"alias_module", "/usr/lib/apache2/modules/mod_alias.so"}, {"dir_module", "modules/mod_dir.so"}}
	server := func(i int) Server {
		return Server{Host: fmt.Sprintf("db'%d", i), Node: fmt.Sprintf("db-\\%d", i), IP: fmt.Sprintf("10.0.0.%d", i), Port: 3306 + i}
	}
	env := []EnvVar{{"APP_ENV", "production"}, {"QUOTE", `it's \ "x"`}}
	cases := []struct {
		name string
		file string
		data any
		got  string
	}{}
	add := func(file string, data any, got string) {
		cases = append(cases, struct {
			name string
			file string
			data any
			got  string
		}{fmt.Sprintf("%s#%d", file, len(cases)), file, data, got})
	}
	for _, v := range []listenView{
		{ListenData{Platform: "debian", Port: 80}, "80", false},
		{ListenData{Platform: "rhel", Port: 80}, "80", true},
		{ListenData{Platform: "debian", Port: 8080, IP: "10.0.0.5"}, "10.0.0.5:8080", false},
	} {
		add("apache_listen.tmpl", v, textApacheListen(v))
	}
	for _, v := range []globalView{
		{ApacheGlobalData{Platform: "debian", MaxRequestWorkers: 150, ThreadsPerChild: 25}, 6, mods},
		{ApacheGlobalData{Platform: "rhel", MaxRequestWorkers: 64, ThreadsPerChild: 64}, 1, nil},
	} {
		add("apache_global.tmpl", v, textApacheGlobal(v))
	}
	for _, v := range []defaultVhostView{
		{DefaultVhostData{Platform: "debian", Port: 80, Health: health}, "*:80", "${APACHE_LOG_DIR}/e.log", "${APACHE_LOG_DIR}/a.log"},
		{DefaultVhostData{Platform: "rhel", IP: "10.0.0.5", Port: 8080, Health: health2}, "10.0.0.5:8080", "logs/e.log", "logs/a.log"},
	} {
		add("apache_default_vhost.tmpl", v, textDefaultVhost(v))
	}
	for _, v := range []vhostView{
		{VhostData{Platform: "debian", Product: "shop", Port: 80, ServerName: "www.shop.example", ServerAliases: []string{"shop.example", "m.shop.example"},
			DocumentRoot: "/var/www/shop/current/public", Socket: "/run/php/shop.sock", ProbeFile: "/var/lib/nodeagent/probe/php-probe.php", Health: health},
			"*:80", "e.log", "a.log", ProbePath},
		{VhostData{Platform: "rhel", Product: "blog", IP: "10.0.0.5", Port: 8080, ServerName: "blog.example",
			DocumentRoot: "/var/www/blog/current", Socket: "/run/php-fpm/blog.sock", ProbeFile: "/p.php", Health: health2},
			"10.0.0.5:8080", "logs/e.log", "logs/a.log", ProbePath},
	} {
		add("apache_product_vhost.tmpl", v, textProductVhost(v))
	}
	for _, v := range []PoolData{
		{Product: "shop", User: "www-data", Group: "www-data", Listen: "/run/php/shop.sock", MaxChildren: 10, StartServers: 2, MinSpare: 1, MaxSpare: 3, MaxRequests: 500,
			MemoryLimit: "256M", Env: env, SessionSavePath: "cache-1:11211,cache-2:11211"},
		{Product: "blog", User: "apache", Group: "apache", Listen: "/run/php-fpm/blog.sock", MaxChildren: 1, StartServers: 1, MinSpare: 1, MaxSpare: 1, MemoryLimit: "128M"},
	} {
		add("php_fpm_pool.tmpl", v, textFPMPool(v))
	}
	for _, v := range []AppConfigData{
		{Product: "shop", DatabaseMaster: server(1), Replicas: []Server{server(2), server(3)}, DatabaseName: "shop", CacheServers: []Server{server(4)}, Sessions: "memcached", Env: env},
		{Product: "blog", DatabaseMaster: server(1), DatabaseName: "b'log", Sessions: "files"},
		{Product: "x", DatabaseMaster: server(1), Replicas: []Server{}, CacheServers: []Server{}, Env: []EnvVar{}},
	} {
		add("app_config.tmpl", v, textAppConfig(v))
	}
	add("php_fpm_global.tmpl", struct{ ProcessControlTimeout string }{"10s"}, textFPMGlobal("10s"))
	add("php_probe.tmpl", struct{ Output string }{ProbeOutput}, textPHPProbe(ProbeOutput))
	mc := MemcachedData{Platform: "debian", MemoryMB: 64, Port: 11211, MaxConnections: 1024, User: "memcache", ListenIP: "10.0.1.20", PIDFile: "/run/memcached/memcached.pid"}
	add("memcached_debian.tmpl", mc, textMemcachedDebian(mc))
	mc.Platform = "rhel"
	add("memcached_rhel.tmpl", mc, textMemcachedRHEL(mc))

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.file] = true
		var want bytes.Buffer
		if err := tmpl.ExecuteTemplate(&want, c.file, c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.got != want.String() {
			t.Errorf("%s: the code writes\n%s\nthe template writes\n%s", c.name, c.got, want.String())
		}
	}
	files, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name() != "apache_health.tmpl" && !covered[f.Name()] { // health is a block of both vhosts
			t.Errorf("%s has no renderer in the comparison", f.Name())
		}
	}
}
