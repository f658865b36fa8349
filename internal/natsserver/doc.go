// Package natsserver runs an embedded NATS server (nats-server as a library)
// so the relay works without any external infrastructure.
//
// How it works:
//
//	Start(Config) ──> nats-server listening on Host:Port (default 127.0.0.1:4222)
//	                  JetStream on/off, file storage under StoreDir
//	ClientURL()   ──> nats://host:port for nats.go clients (fanout, tests)
//	Shutdown()    ──> stops the server and waits until it is gone, so a new
//	                  server can be started on the same port and store directory
//
// Security: clients authenticate with user/password, a token or an nkey
// (Config.User/Password, Token, NKey); a listen host other than loopback is
// refused without one of them (ErrNoAuth). TLSCert/TLSKey make the client
// port TLS-only, TLSClientCA also requires client certificates. Only the
// client port is opened: no monitoring, cluster, gateway, leaf node,
// websocket or MQTT listener. InProcessConn gives the relay's own publisher
// a socket-less connection (nats.InProcessServer) that still authenticates
// but needs no TLS client settings.
//
// The server is quiet by default; pass a *slog.Logger to route its notices
// (at Debug), warnings and errors into the relay's log. The embedded server
// never installs signal handlers.
package natsserver
