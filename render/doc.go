// Package render turns typed data into the bytes of the files nodeagent
// manages: Apache listen, global and virtual host configs, PHP-FPM pools,
// the PHP app config, the PHP probe and the memcached config, with plain
// string building (text.go; see there why not text/template). The templates
// in templates/ are the readable form and the oracle a test holds that code
// to, byte for byte; render never writes files.
//
// Every string that reaches a file first passes the syntax guard for that
// file (ApacheToken, FPMValue, FPMKey, PHPString, MemcachedArg). Values are
// validated upstream by the topology package too; the guards are the last
// line, so a newline, quote or directive smuggled into a name is refused
// with an error naming the data field, never rendered. Rendering is
// deterministic: the same data always gives the same bytes.
package render
