package chatwoot

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// APIPrefix is where the public client API lives below Chatwoot's root.
const APIPrefix = "/public/api/v1"

// Route templates of the public client API, relative to APIPrefix. They are
// the only values of the "route" metric label (plus RouteOther) and what
// error texts and logs name instead of a path.
const (
	RouteInbox          = "/inboxes/{inbox}"
	RouteContacts       = RouteInbox + "/contacts"
	RouteContact        = RouteContacts + "/{source_id}"
	RouteConversations  = RouteContact + "/conversations"
	RouteConversation   = RouteConversations + "/{conversation}"
	RouteToggleStatus   = RouteConversation + "/toggle_status"
	RouteToggleTyping   = RouteConversation + "/toggle_typing"
	RouteUpdateLastSeen = RouteConversation + "/update_last_seen"
	RouteMessages       = RouteConversation + "/messages"
	RouteMessage        = RouteMessages + "/{message}"
	RouteCSATSurvey     = "/csat_survey/{uuid}"
	// RouteOther stands for any path Client.Do is given that matches no
	// known template.
	RouteOther = "other"
)

var knownRoutes = []string{
	RouteInbox, RouteContacts, RouteContact, RouteConversations, RouteConversation,
	RouteToggleStatus, RouteToggleTyping, RouteUpdateLastSeen, RouteMessages,
	RouteMessage, RouteCSATSurvey,
}

// secretParams are the template parameters whose values are bearer secrets
// (inbox identifier, contact source_id, conversation uuid) and are scrubbed
// from error texts.
var secretParams = map[string]bool{"{inbox}": true, "{source_id}": true, "{uuid}": true}

// route is one request target: its template (for metrics, logs, errors) and
// its escaped path and query (for the wire).
type route struct {
	method  string
	tmpl    string
	path    string // escaped, relative to APIPrefix, starts with "/"
	query   string // raw query without "?"
	secrets []string
	app     bool // an Application API route: path is relative to Chatwoot's root
}

func (r route) name() string { return methodLabel(r.method) + " " + r.tmpl }

// scrub replaces every secret path value of the route in s.
func (r route) scrub(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// newRoute fills tmpl's {params} with values, escaping each as one path
// segment.
func newRoute(method, tmpl string, values ...string) (route, error) {
	rt := route{method: method, tmpl: tmpl}
	var b strings.Builder
	for seg := range strings.SplitSeq(strings.TrimPrefix(tmpl, "/"), "/") {
		b.WriteByte('/')
		if !strings.HasPrefix(seg, "{") {
			b.WriteString(seg)
			continue
		}
		if len(values) == 0 {
			return route{}, fmt.Errorf("%w: %s needs more values", ErrArgument, tmpl)
		}
		v := values[0]
		values = values[1:]
		if err := checkSegment(seg, v); err != nil {
			return route{}, err
		}
		b.WriteString(url.PathEscape(v))
		if secretParams[seg] {
			rt.addSecret(v)
		}
	}
	rt.path = b.String()
	return rt, nil
}

func checkSegment(param, v string) error {
	if v == "" || v == "." || v == ".." {
		return fmt.Errorf("%w: %s is empty or a dot segment", ErrArgument, param)
	}
	return nil
}

// addSecret records v (and its escaped forms) for scrubbing, longest first so
// that an escaped form is replaced before the raw value inside it.
func (r *route) addSecret(v string) {
	r.secrets = append(r.secrets, v, url.PathEscape(v), url.QueryEscape(v))
	sort.SliceStable(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

func idSegment(id int64) string { return strconv.FormatInt(id, 10) }

// proxyRoute validates a path given to Client.Do (relative to APIPrefix,
// optionally with a query) and matches it to a template.
func proxyRoute(method, p string) (route, error) {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return route{}, fmt.Errorf("%w: path must start with a single /", ErrArgument)
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return route{}, fmt.Errorf("%w: malformed path", ErrArgument)
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return route{}, fmt.Errorf("%w: dot segment in path", ErrArgument)
		}
	}
	rt := matchRoute(method, u.EscapedPath())
	rt.query = u.RawQuery
	return rt, nil
}

// matchRoute finds the template an escaped path belongs to. Like Rails, it
// takes a ".json" format suffix as the same route.
func matchRoute(method, escPath string) route {
	segs := strings.Split(strings.TrimPrefix(escPath, "/"), "/")
	segs[len(segs)-1] = strings.TrimSuffix(segs[len(segs)-1], ".json")
	for _, tmpl := range knownRoutes {
		if rt, ok := matchTemplate(tmpl, segs); ok {
			rt.method, rt.path = method, escPath
			return rt
		}
	}
	rt := route{method: method, tmpl: RouteOther, path: escPath}
	for _, s := range segs {
		if s != "" {
			rt.addSecret(unescape(s))
		}
	}
	return rt
}

func matchTemplate(tmpl string, segs []string) (route, bool) {
	tsegs := strings.Split(strings.TrimPrefix(tmpl, "/"), "/")
	if len(tsegs) != len(segs) {
		return route{}, false
	}
	rt := route{tmpl: tmpl}
	for i, ts := range tsegs {
		switch {
		case !strings.HasPrefix(ts, "{"):
			if ts != segs[i] {
				return route{}, false
			}
		case segs[i] == "":
			return route{}, false
		case secretParams[ts]:
			rt.addSecret(unescape(segs[i]))
		}
	}
	return rt, true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// methodLabel maps a request method to a fixed metric label value.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	default:
		return "OTHER"
	}
}
