package source

import "errors"

var (
	errNotRegular       = errors.New("not a regular file")
	errHTTPStatus       = errors.New("unexpected HTTP status")
	errTooManyRedirects = errors.New("more than 10 redirects")
	errRedirect         = errors.New("refused: an https source redirects only to https, and to loopback or link-local addresses only from one")
)
