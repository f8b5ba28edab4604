package transfer

import (
	"net/url"
	"path"
	"strings"
)

// mediaType returns the response's content type when it says something.
func mediaType(ct string) string {
	ct = strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])
	switch strings.ToLower(ct) {
	case "", "application/octet-stream", "binary/octet-stream", "application/binary", "text/plain":
		return ""
	}
	return ct
}

var extTypes = []struct{ ext, typ string }{
	{"mp4", "video/mp4"},
	{"mov", "video/quicktime"},
	{"webm", "video/webm"},
	{"mkv", "video/x-matroska"},
	{"m4v", "video/x-m4v"},
	{"avi", "video/x-msvideo"},
	{"mpeg", "video/mpeg"},
	{"mpg", "video/mpeg"},
	{"m4a", "audio/mp4"},
	{"mp3", "audio/mpeg"},
	{"wav", "audio/wav"},
	{"flac", "audio/flac"},
	{"ogg", "audio/ogg"},
}

// Ext returns the media's file extension for an object name ("mp4", "mov",
// "webm", ...): the URL's (or object name's) when it is a known media type,
// else the content type's, else "mp4". The result is always one of the known
// lowercase extensions, so it is safe in an object name.
func Ext(rawURL, contentType string) string {
	p := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		p = u.Path
	}
	e := strings.ToLower(strings.TrimPrefix(path.Ext(p), "."))
	for _, t := range extTypes {
		if t.ext == e {
			return e
		}
	}
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	for _, t := range extTypes {
		if t.typ == ct {
			return t.ext
		}
	}
	switch ct {
	case "audio/x-wav", "audio/wave":
		return "wav"
	case "audio/mp4a-latm", "audio/x-m4a":
		return "m4a"
	}
	return "mp4"
}

// ContentTypeOf returns the content type for an extension Ext returns.
func ContentTypeOf(ext string) string {
	for _, t := range extTypes {
		if t.ext == ext {
			return t.typ
		}
	}
	return "application/octet-stream"
}
