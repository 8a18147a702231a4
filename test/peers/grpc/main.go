// grpc-peer: a grpc-go client and server for the sidecar's integration tests (test/integration/
// grpc-go.test.ts). Real grpc-go on both ends, so what passes is what a Go service would see.
//
//	grpc-peer server -listen 127.0.0.1:0 [-cert F -key F -ca F]
//	    serves peer.Test and grpc.health.v1.Health; prints {"event":"listening","address":…} and one
//	    JSON line per finished Wait call (how its context ended), on stdout.
//	grpc-peer client -target HOST:PORT [-cert F -key F -ca F -server-name N] [-keepalive 10s]
//	    one ClientConn for the life of the process; reads one JSON command per line on stdin and
//	    prints one JSON result per line (see command and result below).
//	grpc-peer probe -target HOST:PORT [-cert …] -ping 200ms -for 5s
//	    a raw HTTP/2 connection that makes one call, then only PINGs: prints whether the server
//	    sent GOAWAY (and its last stream id) before it closed the connection.
//
// The service needs no generated code: its messages are protobuf's wrappers (StringValue) and its
// service description is written out below.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(v any) {
	out.Lock()
	defer out.Unlock()
	_ = out.enc.Encode(v)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "grpc-peer: "+format+"\n", args...)
	os.Exit(2)
}

type tlsFlags struct{ cert, key, ca, serverName *string }

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		cert:       fs.String("cert", "", "PEM certificate (TLS when set)"),
		key:        fs.String("key", "", "PEM private key"),
		ca:         fs.String("ca", "", "PEM CA that the peer's certificate must chain to"),
		serverName: fs.String("server-name", "", "name the server certificate must carry (client)"),
	}
}

func (f tlsFlags) config(server bool) *tls.Config {
	if *f.cert == "" {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(*f.cert, *f.key)
	if err != nil {
		fatal("cannot load -cert/-key: %v", err)
	}
	pem, err := os.ReadFile(*f.ca)
	if err != nil {
		fatal("cannot read -ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fatal("-ca %s holds no certificate", *f.ca)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	if server {
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	} else {
		cfg.RootCAs = pool
		cfg.ServerName = *f.serverName
	}
	return cfg
}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: grpc-peer server|client|probe [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	tf := addTLSFlags(fs)
	switch os.Args[1] {
	case "server":
		listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
		_ = fs.Parse(os.Args[2:])
		runServer(*listen, tf.config(true))
	case "client":
		target := fs.String("target", "", "host:port to dial")
		ka := fs.Duration("keepalive", 0, "keepalive PING interval with PermitWithoutStream (grpc-go raises it to 10s at least)")
		_ = fs.Parse(os.Args[2:])
		runClient(*target, tf.config(false), *ka)
	case "probe":
		target := fs.String("target", "", "host:port to dial")
		ping := fs.Duration("ping", 200*time.Millisecond, "PING interval")
		limit := fs.Duration("for", 10*time.Second, "give up after")
		_ = fs.Parse(os.Args[2:])
		runProbe(*target, tf.config(false), *ping, *limit)
	default:
		fatal("unknown command %q: server, client or probe", os.Args[1])
	}
}

// ---------------------------------------------------------------------------------------------
// Server

type testServer struct{ health *health.Server }

// failure parses "fail:<code>:<message>" into a status with a detail, or nil.
func failure(text string) error {
	rest, ok := strings.CutPrefix(text, "fail:")
	if !ok {
		return nil
	}
	codeText, msg, _ := strings.Cut(rest, ":")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return status.Error(codes.InvalidArgument, "bad fail code "+codeText)
	}
	st, err := status.New(codes.Code(code), msg).WithDetails(wrapperspb.String("detail:" + msg))
	if err != nil {
		return err
	}
	return st.Err()
}

// echoMetadata returns the x-* request metadata as response metadata, prefixed with echo-.
func echoMetadata(ctx context.Context) metadata.MD {
	md, _ := metadata.FromIncomingContext(ctx)
	echo := metadata.MD{}
	for k, v := range md {
		if strings.HasPrefix(k, "x-") {
			echo["echo-"+k] = v
		}
	}
	return echo
}

func (s *testServer) unary(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+req.Value, "x-trailer-bin", string([]byte{0, 1, 2, 255})))
	if err := failure(req.Value); err != nil {
		// Nothing sent yet: grpc-go answers Trailers-Only.
		return nil, err
	}
	switch {
	case req.Value == "wait":
		deadline, hasDeadline := ctx.Deadline()
		left := time.Until(deadline).Milliseconds()
		<-ctx.Done()
		// The client's deadline arrives as grpc-timeout; when it passes, the server's own timer and
		// the client's RST_STREAM race, so either error may end the context.
		emit(map[string]any{"event": "wait_done", "err": ctx.Err().Error(), "hadDeadline": hasDeadline, "deadlineLeftMs": left})
		return nil, status.FromContextError(ctx.Err()).Err()
	case strings.HasPrefix(req.Value, "health:"):
		name, st, _ := strings.Cut(strings.TrimPrefix(req.Value, "health:"), "=")
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_ServingStatus(healthpb.HealthCheckResponse_ServingStatus_value[st]))
		return wrapperspb.String("ok"), nil
	case strings.HasPrefix(req.Value, "big:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(req.Value, "big:"))
		return wrapperspb.String(strings.Repeat("b", n)), nil
	}
	_ = grpc.SetHeader(ctx, echoMetadata(ctx))
	return wrapperspb.String(req.Value), nil
}

// serverStream sends "n:<count>[:fail:<code>:<message>]" messages, then the status.
func (s *testServer) serverStream(req *wrapperspb.StringValue, stream grpc.ServerStream) error {
	countText, rest, _ := strings.Cut(strings.TrimPrefix(req.Value, "n:"), ":")
	n, _ := strconv.Atoi(countText)
	stream.SetTrailer(metadata.Pairs("x-trailer", "stream"))
	for i := range n {
		if err := stream.SendMsg(wrapperspb.String(fmt.Sprintf("m%d", i))); err != nil {
			return err
		}
	}
	return failure(rest)
}

func (s *testServer) clientStream(stream grpc.ServerStream) error {
	var count, size int
	for {
		var m wrapperspb.StringValue
		if err := stream.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		count++
		size += len(m.Value)
	}
	return stream.SendMsg(wrapperspb.String(fmt.Sprintf("count:%d,bytes:%d", count, size)))
}

func (s *testServer) bidi(stream grpc.ServerStream) error {
	_ = stream.SetHeader(echoMetadata(stream.Context()))
	for {
		var m wrapperspb.StringValue
		if err := stream.RecvMsg(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := failure(m.Value); err != nil {
			return err
		}
		if err := stream.SendMsg(wrapperspb.String("echo:" + m.Value)); err != nil {
			return err
		}
	}
}

var testServiceDesc = grpc.ServiceDesc{
	ServiceName: "peer.Test",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(*testServer).unary(ctx, in)
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", ServerStreams: true, Handler: func(srv any, stream grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(*testServer).serverStream(in, stream)
		}},
		{StreamName: "ClientStream", ClientStreams: true, Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(*testServer).clientStream(stream)
		}},
		{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(*testServer).bidi(stream)
		}},
	},
}

func runServer(listen string, tlsConfig *tls.Config) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		fatal("cannot listen on %s: %v", listen, err)
	}
	opts := []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true})}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("peer.Test", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(&testServiceDesc, &testServer{health: hs})
	emit(map[string]any{"event": "listening", "address": lis.Addr().String()})
	if err := srv.Serve(lis); err != nil {
		fatal("serve: %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// Client

type command struct {
	Op        string            `json:"op"`
	Msg       string            `json:"msg"`
	Msgs      []string          `json:"msgs"`
	Metadata  map[string]string `json:"metadata"`
	TimeoutMs int               `json:"timeoutMs"`
	CancelMs  int               `json:"cancelMs"`
	Service   string            `json:"service"`
	// Method: the full method a unary call invokes (default /peer.Test/Unary).
	Method string `json:"method"`
	// WaitForReady: the call waits for a connection instead of failing while there is none.
	WaitForReady bool `json:"waitForReady"`
}

type result struct {
	Code     string              `json:"code"`
	Message  string              `json:"message,omitempty"`
	Details  []string            `json:"details,omitempty"`
	Reply    string              `json:"reply,omitempty"`
	Replies  []string            `json:"replies,omitempty"`
	Header   map[string][]string `json:"header,omitempty"`
	Trailer  map[string][]string `json:"trailer,omitempty"`
	Statuses []string            `json:"statuses,omitempty"`
	State    string              `json:"state,omitempty"`
	// Connections dialed and GOAWAY frames received on them, so far (plaintext clients only).
	Connections int64 `json:"connections"`
	Goaways     int64 `json:"goaways"`
}

var connections, goaways atomic.Int64

// frameWatcher counts the GOAWAY frames a server sends on a cleartext HTTP/2 connection: how a
// test tells a connection closed with GOAWAY (clients stop using it) from one just cut.
type frameWatcher struct {
	net.Conn
	header  []byte
	payload int
}

func (c *frameWatcher) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.payload > 0 {
			skip := min(c.payload, len(b))
			c.payload -= skip
			b = b[skip:]
			continue
		}
		take := min(9-len(c.header), len(b))
		c.header = append(c.header, b[:take]...)
		b = b[take:]
		if len(c.header) == 9 {
			c.payload = int(c.header[0])<<16 | int(c.header[1])<<8 | int(c.header[2])
			if c.header[3] == byte(http2.FrameGoAway) {
				goaways.Add(1)
			}
			c.header = c.header[:0]
		}
	}
	return n, err
}

// codeName: the canonical name (NOT_FOUND), not grpc-go's String() (NotFound).
func codeName(c codes.Code) string {
	if c == codes.OK {
		return "OK"
	}
	var b strings.Builder
	for i, ch := range c.String() {
		if i > 0 && ch >= 'A' && ch <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(ch)
	}
	return strings.ToUpper(b.String())
}

func describe(err error, r *result) {
	st := status.Convert(err)
	r.Code = codeName(st.Code())
	r.Message = st.Message()
	for _, d := range st.Details() {
		if s, ok := d.(*wrapperspb.StringValue); ok {
			r.Details = append(r.Details, s.Value)
		} else {
			r.Details = append(r.Details, fmt.Sprint(d))
		}
	}
}

// plain returns metadata with binary values base64-encoded, so JSON carries them intact.
func plain(md metadata.MD) map[string][]string {
	if len(md) == 0 {
		return nil
	}
	m := map[string][]string{}
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.StdEncoding.EncodeToString([]byte(v))
			}
			m[k] = append(m[k], v)
		}
	}
	return m
}

func runClient(target string, tlsConfig *tls.Config, ka time.Duration) {
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if tlsConfig == nil {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			connections.Add(1)
			return &frameWatcher{Conn: conn}, nil
		}))
	}
	if ka > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: ka, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		fatal("cannot create a client for %s: %v", target, err)
	}
	defer conn.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			emit(result{Code: "BAD_COMMAND", Message: err.Error()})
			continue
		}
		emit(run(conn, cmd))
	}
}

func run(conn *grpc.ClientConn, cmd command) result {
	ctx := context.Background()
	if len(cmd.Metadata) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(cmd.Metadata))
	}
	var cancel context.CancelFunc
	if cmd.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(cmd.TimeoutMs)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if cmd.CancelMs > 0 {
		time.AfterFunc(time.Duration(cmd.CancelMs)*time.Millisecond, cancel)
	}
	callOpts := []grpc.CallOption{grpc.WaitForReady(cmd.WaitForReady)}
	var r result
	var header, trailer metadata.MD
	callOpts = append(callOpts, grpc.Header(&header), grpc.Trailer(&trailer))
	switch cmd.Op {
	case "unary":
		reply := new(wrapperspb.StringValue)
		method := cmd.Method
		if method == "" {
			method = "/peer.Test/Unary"
		}
		err := conn.Invoke(ctx, method, wrapperspb.String(cmd.Msg), reply, callOpts...)
		describe(err, &r)
		if err == nil {
			r.Reply = reply.Value
			if len(r.Reply) > 64 {
				r.Reply = fmt.Sprintf("%d bytes", len(r.Reply))
			}
		}
	case "server_stream", "client_stream", "bidi":
		desc := &grpc.StreamDesc{ServerStreams: cmd.Op != "client_stream", ClientStreams: cmd.Op != "server_stream"}
		method := map[string]string{"server_stream": "ServerStream", "client_stream": "ClientStream", "bidi": "Bidi"}[cmd.Op]
		stream, err := conn.NewStream(ctx, desc, "/peer.Test/"+method, callOpts...)
		if err != nil {
			describe(err, &r)
			break
		}
		sent := cmd.Msgs
		if cmd.Op == "server_stream" {
			sent = []string{cmd.Msg}
		}
		for _, m := range sent {
			if err := stream.SendMsg(wrapperspb.String(m)); err != nil {
				break // the status comes from RecvMsg
			}
		}
		_ = stream.CloseSend()
		for {
			m := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(m); err != nil {
				if err == io.EOF {
					err = nil
				}
				describe(err, &r)
				break
			}
			r.Replies = append(r.Replies, m.Value)
		}
		header, _ = stream.Header()
		trailer = stream.Trailer()
	case "health_check":
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: cmd.Service}, callOpts...)
		describe(err, &r)
		if err == nil {
			r.Statuses = []string{resp.Status.String()}
		}
	case "health_watch":
		// Watches cmd.Service, sets it to each of cmd.Msgs in turn once the previous one is seen,
		// and returns every status seen (the first is the current one).
		stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: cmd.Service}, callOpts...)
		if err != nil {
			describe(err, &r)
			break
		}
		for i := 0; ; i++ {
			resp, err := stream.Recv()
			if err != nil {
				describe(err, &r)
				break
			}
			r.Statuses = append(r.Statuses, resp.Status.String())
			if i == len(cmd.Msgs) {
				cancel()
				r.Code = "OK"
				break
			}
			set := new(wrapperspb.StringValue)
			if err := conn.Invoke(context.Background(), "/peer.Test/Unary", wrapperspb.String("health:"+cmd.Service+"="+cmd.Msgs[i]), set); err != nil {
				describe(err, &r)
				break
			}
		}
	case "state":
		r.Code = "OK"
	default:
		r.Code = "BAD_COMMAND"
		r.Message = "unknown op " + cmd.Op
	}
	r.Header = plain(header)
	r.Trailer = plain(trailer)
	r.State = conn.GetState().String()
	r.Connections = connections.Load()
	r.Goaways = goaways.Load()
	return r
}

// ---------------------------------------------------------------------------------------------
// Probe

type probeResult struct {
	CallStatus   string `json:"callStatus"`
	Pings        int    `json:"pings"`
	Goaway       bool   `json:"goaway"`
	GoawayCode   string `json:"goawayCode,omitempty"`
	LastStreamID uint32 `json:"lastStreamId"`
	Closed       bool   `json:"closed"`
	Error        string `json:"error,omitempty"`
}

// runProbe: one gRPC call on stream 1, then PINGs only, as an idle client with keepalive does.
// The server must close such a connection with GOAWAY first: a client that is not told keeps
// sending new calls onto a connection that is being closed.
func runProbe(target string, tlsConfig *tls.Config, ping, limit time.Duration) {
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = tls.Dial("tcp", target, tlsConfig)
	} else {
		conn, err = net.Dial("tcp", target)
	}
	if err != nil {
		fatal("cannot dial %s: %v", target, err)
	}
	defer conn.Close()
	var r probeResult
	var wmu sync.Mutex
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	write := func(f func() error) error {
		wmu.Lock()
		defer wmu.Unlock()
		return f()
	}
	_, _ = conn.Write([]byte(http2.ClientPreface))
	_ = write(func() error { return fr.WriteSettings() })
	var hbuf strings.Builder
	enc := hpack.NewEncoder(&hbuf)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", scheme}, {":path", "/grpc.health.v1.Health/Check"}, {":authority", target}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = write(func() error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(hbuf.String()), EndHeaders: true})
	})
	// An empty HealthCheckRequest: a 5-byte gRPC frame header with length 0.
	_ = write(func() error { return fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}) })
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(ping)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if write(func() error { return fr.WritePing(false, [8]byte{1}) }) != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			r.Closed = errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer")
			if !r.Closed {
				r.Error = err.Error()
			}
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = write(func() error { return fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if f.IsAck() {
				r.Pings++
			} else {
				_ = write(func() error { return fr.WritePing(true, f.Data) })
			}
		case *http2.MetaHeadersFrame:
			for _, h := range f.Fields {
				if h.Name == "grpc-status" {
					r.CallStatus = h.Value
				}
			}
		case *http2.GoAwayFrame:
			r.Goaway = true
			r.GoawayCode = f.ErrCode.String()
			r.LastStreamID = f.LastStreamID
		}
	}
	close(stop)
	emit(r)
}
