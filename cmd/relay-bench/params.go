package main

import "time"

// Params size every scenario. They are part of the results file, so a
// number is never read without the setup that produced it.
type Params struct {
	// Throughput and latency.
	Subscriptions int `json:"subscriptions"`       // per mode (relay or floor)
	PerConn       int `json:"per_conn"`            // subscriptions per websocket, relay and floors alike
	MessageBytes  int `json:"message_bytes"`       // size of each message.created object
	Events        int `json:"events_per_run"`      // throughput: events pushed per run
	Rounds        int `json:"rounds"`              // interleaved rounds (throughput and latency)
	Pushers       int `json:"pushers"`             // goroutines calling the fake's Broadcast
	LatencyRate   int `json:"latency_rate"`        // events/s in the latency scenario
	LatencyRun    Dur `json:"latency_run"`         // duration of one latency run
	ProbeRun      Dur `json:"probe_run"`           // duration of one paced throughput probe
	SettleQuiet   Dur `json:"settle_quiet"`        // a run ends when nothing arrived for this long
	Pause         Dur `json:"pause"`               // between runs
	FastSubscribe int `json:"fast_subscribe_rate"` // RELAY_CABLE_SUBSCRIBE_RATE outside the storm

	// Scale and storm.
	ScaleSubscriptions int     `json:"scale_subscriptions"`
	IdleWindow         Dur     `json:"idle_window"` // idle CPU measured over this window
	WaitGC             Dur     `json:"wait_gc"`     // wait this long at most for a GC before reading the heap
	StormRate          float64 `json:"storm_rate"`  // RELAY_CABLE_SUBSCRIBE_RATE in the storm
	StormBurst         int     `json:"storm_burst"` // RELAY_CABLE_SUBSCRIBE_BURST in the storm
	StormSlack         float64 `json:"storm_slack"` // allowed overrun of subscriptions/rate (0.10 = 10 %)
	ConfirmTimeout     Dur     `json:"confirm_timeout"`

	// Cluster: replicas on one redis-server splitting the subscriptions.
	ClusterSubscriptions int     `json:"cluster_subscriptions"`
	ClusterReplicas      int     `json:"cluster_replicas"`
	ClusterRate          float64 `json:"cluster_subscribe_rate"` // deployment-wide RELAY_CABLE_SUBSCRIBE_RATE
	ClusterBurst         int     `json:"cluster_subscribe_burst"`

	// Soak.
	Soak SoakParams `json:"soak"`

	// CPU: paced runs at each rate (events/s), CPURun long each.
	CPURates []int `json:"cpu_rates"`
	CPURun   Dur   `json:"cpu_run"`
}

// SoakParams size the soak: a long run under steady load with the
// websockets dropped and NATS restarted at fixed intervals.
type SoakParams struct {
	Duration    Dur `json:"duration"`
	Contacts    int `json:"contacts"`
	Rate        int `json:"agent_replies_per_sec"` // all contacts together
	DropEvery   Dur `json:"drop_every"`            // every websocket dropped (the fake's DropAll)
	NATSEvery   Dur `json:"nats_restart_every"`
	NATSDown    Dur `json:"nats_down"`    // how long NATS stays away at each restart
	SampleEvery Dur `json:"sample_every"` // RSS, goroutines and fds read this often
	WarmUp      Dur `json:"warm_up"`      // samples before this are left out of the slopes
}

// Dur is a time.Duration that reads as "1.5s" in JSON.
type Dur time.Duration

// MarshalText formats d like time.Duration.String.
func (d Dur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a time.Duration string.
func (d *Dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Dur(v)
	return err
}

// D returns d as a time.Duration.
func (d Dur) D() time.Duration { return time.Duration(d) }

func defaultParams(quick bool) Params {
	p := Params{
		Subscriptions: 1000, PerConn: 200, MessageBytes: 1024,
		Events: 300_000, Rounds: 5, Pushers: 4,
		LatencyRate: 10_000, LatencyRun: Dur(5 * time.Second), ProbeRun: Dur(3 * time.Second),
		Pause: Dur(time.Second), SettleQuiet: Dur(3 * time.Second),
		FastSubscribe:      100_000,
		ScaleSubscriptions: 100_000, IdleWindow: Dur(10 * time.Second), WaitGC: Dur(150 * time.Second),
		StormRate: 2000, StormBurst: 5, StormSlack: 0.10,
		ConfirmTimeout:       Dur(10 * time.Minute),
		ClusterSubscriptions: 1_000_000, ClusterReplicas: 5, ClusterRate: 10_000, ClusterBurst: 5,
		Soak: SoakParams{Duration: Dur(30 * time.Minute), Contacts: 200, Rate: 2000,
			DropEvery: Dur(time.Minute), NATSEvery: Dur(10 * time.Minute), NATSDown: Dur(5 * time.Second),
			SampleEvery: Dur(10 * time.Second), WarmUp: Dur(2 * time.Minute)},
		CPURates: []int{10_000, 40_000}, CPURun: Dur(10 * time.Second),
	}
	if quick {
		p.Events, p.Rounds = 20_000, 1
		p.LatencyRun, p.ProbeRun, p.SettleQuiet = Dur(time.Second), Dur(time.Second), Dur(2*time.Second)
		p.Pause = Dur(100 * time.Millisecond)
		p.ScaleSubscriptions, p.IdleWindow, p.WaitGC = 10_000, Dur(2*time.Second), 0
		p.ConfirmTimeout = Dur(2 * time.Minute)
		p.CPURun = Dur(time.Second)
		p.ClusterSubscriptions, p.ClusterReplicas = 20_000, 3
	}
	return p
}

func (p *Params) override(rounds, events, subs int) {
	if subs > 0 {
		p.ScaleSubscriptions, p.ClusterSubscriptions = subs, subs
	}
	if rounds > 0 {
		p.Rounds = rounds
	}
	if events > 0 {
		p.Events = events
	}
}

// overrideSoak applies the soak flags that were given (non-zero).
func (p *Params) overrideSoak(o soakFlags) {
	s := &p.Soak
	setDur(&s.Duration, o.duration)
	setDur(&s.DropEvery, o.dropEvery)
	setDur(&s.NATSEvery, o.natsEvery)
	setDur(&s.NATSDown, o.natsDown)
	setDur(&s.SampleEvery, o.sampleEvery)
	setDur(&s.WarmUp, o.warmUp)
	if o.contacts > 0 {
		s.Contacts = o.contacts
	}
	if o.rate > 0 {
		s.Rate = o.rate
	}
}

func setDur(d *Dur, v time.Duration) {
	if v > 0 {
		*d = Dur(v)
	}
}

// overrideCluster applies the cluster flags that were given (non-zero).
func (p *Params) overrideCluster(replicas int, rate float64) {
	if replicas > 0 {
		p.ClusterReplicas = replicas
	}
	if rate > 0 {
		p.ClusterRate = rate
	}
}
