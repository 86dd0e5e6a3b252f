package shim

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// wireConn makes unary gRPC calls to containerd, one at a time, over one
// HTTP/2 connection, with the frame and header codecs of x/net/http2 that
// grpc's own transport uses. It is not grpc's client: that one starts a
// resolver, a balancer and a transport with their goroutines and buffers,
// and the code it runs for the two calls of imageOf stayed resident in
// every machine container's daemon, 0.6 MiB of its VmRSS.
//
// The protocol: gRPC over HTTP/2 (grpc's PROTOCOL-HTTP2.md). A request is
// a HEADERS frame and one DATA frame holding the message behind a 5-byte
// prefix (not compressed, length); the reply is HEADERS, DATA with the
// message, and trailers with grpc-status, or headers with grpc-status
// alone when the call failed at once.
type wireConn struct {
	conn      net.Conn
	fr        *http2.Framer
	headers   bytes.Buffer
	enc       *hpack.Encoder
	namespace string
	next      uint32 // the stream of the next call: 1, 3, 5...
	stop      func() bool
}

// wireWindow is the flow control window wireConn grants containerd, for
// the connection and each stream: larger than any reply it reads, so it
// never has to grant more.
const wireWindow = 1 << 26

// dialWire connects to containerd's gRPC socket at address, for calls in
// its namespace. ctx bounds the connection's life.
func dialWire(ctx context.Context, address, namespace string) (_ *wireConn, retErr error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", address)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			conn.Close()
		}
	}()
	c := &wireConn{conn: conn, fr: http2.NewFramer(conn, conn), namespace: namespace, next: 1}
	c.enc = hpack.NewEncoder(&c.headers)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// A read or write blocked when ctx ends fails at once.
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return nil, err
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: wireWindow}); err != nil {
		return nil, err
	}
	if err := c.fr.WriteWindowUpdate(0, wireWindow-65535); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *wireConn) Close() error {
	c.stop()
	return c.conn.Close()
}

// call calls method (/package.Service/Method) with the wire bytes of its
// request message, and returns those of its reply. A call that fails on
// containerd's side returns its gRPC status as an error.
func (c *wireConn) call(method string, msg []byte) ([]byte, error) {
	id := c.next
	c.next += 2
	c.headers.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method}, {Name: ":authority", Value: "localhost"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		{Name: "containerd-namespace", Value: c.namespace},
	} {
		if err := c.enc.WriteField(f); err != nil {
			return nil, err
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.headers.Bytes(), EndHeaders: true}); err != nil {
		return nil, err
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	if err := c.fr.WriteData(id, true, append(body, msg...)); err != nil {
		return nil, err
	}
	var reply []byte
	grpcStatus, grpcMessage := "", ""
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID < id {
				return nil, fmt.Errorf("%s: containerd closed the connection (%v)", method, f.ErrCode)
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return nil, fmt.Errorf("%s: containerd reset the call (%v)", method, f.ErrCode)
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				reply = append(reply, f.Data()...) // valid until the next frame
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				if s := f.PseudoValue("status"); s != "" && s != "200" {
					grpcStatus, grpcMessage = strconv.Itoa(int(codes.Unknown)), "HTTP status "+s
				}
				for _, h := range f.RegularFields() {
					switch h.Name {
					case "grpc-status":
						grpcStatus = h.Value
					case "grpc-message":
						grpcMessage = h.Value
					}
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
			break
		}
	}
	return grpcReply(reply, grpcStatus, grpcMessage)
}

// grpcReply is the message of a reply, or the error its status says.
func grpcReply(body []byte, grpcStatus, grpcMessage string) ([]byte, error) {
	code, err := strconv.ParseUint(grpcStatus, 10, 32)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "containerd's reply has no gRPC status (%q)", grpcStatus)
	}
	if code != uint64(codes.OK) {
		if m, err := url.PathUnescape(grpcMessage); err == nil {
			grpcMessage = m
		}
		return nil, status.Error(codes.Code(code), grpcMessage)
	}
	if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		return nil, status.Errorf(codes.Internal, "containerd's reply is not one uncompressed message (%d bytes)", len(body))
	}
	return body[5:], nil
}
