package main

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// faultRoutes are the route names POST /fake/faults accepts.
var faultRoutes = []string{
	chatwoottest.AllRoutes, chatwoottest.RouteCable, chatwoottest.RouteInboxShow,
	chatwoottest.RouteContactCreate, chatwoottest.RouteContactShow, chatwoottest.RouteContactUpdate,
	chatwoottest.RouteConversationIndex, chatwoottest.RouteConversationCreate, chatwoottest.RouteConversationShow,
	chatwoottest.RouteToggleStatus, chatwoottest.RouteToggleTyping, chatwoottest.RouteUpdateLastSeen,
	chatwoottest.RouteMessageIndex, chatwoottest.RouteMessageCreate, chatwoottest.RouteMessageUpdate,
}

// faultRequest is the body of POST /fake/faults.
type faultRequest struct {
	Route         string `json:"route"`
	Status        int    `json:"status"`
	Delay         string `json:"delay"` // a Go duration such as "2s"
	Garbage       bool   `json:"garbage"`
	Count         int    `json:"count"`
	AfterHandling bool   `json:"after_handling"`
}

func (f faultRequest) fault() (chatwoottest.Fault, error) {
	if !slices.Contains(faultRoutes, f.Route) {
		return chatwoottest.Fault{}, fmt.Errorf("route: want one of %q", faultRoutes)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return chatwoottest.Fault{}, fmt.Errorf("status: want an HTTP status or 0")
	}
	if f.Count < 0 {
		return chatwoottest.Fault{}, fmt.Errorf("count: must not be negative (0 = until cleared)")
	}
	var delay time.Duration
	if f.Delay != "" {
		var err error
		if delay, err = time.ParseDuration(f.Delay); err != nil || delay < 0 {
			return chatwoottest.Fault{}, fmt.Errorf("delay: want a duration such as \"2s\"")
		}
	}
	return chatwoottest.Fault{Delay: delay, Status: f.Status, Garbage: f.Garbage, Count: f.Count, AfterHandling: f.AfterHandling}, nil
}

// setFault installs a REST fault on a route (or "*" for all).
func (c *control) setFault(w http.ResponseWriter, r *http.Request) {
	var req faultRequest
	if !decode(w, r, &req) {
		return
	}
	f, err := req.fault()
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	c.fake.SetFault(req.Route, f)
	reply(w, req, nil)
}
