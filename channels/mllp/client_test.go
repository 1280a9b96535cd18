package mllp_test

import (
	"context"
	"testing"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

func TestClientSurvivesUnsolicitedFrames(t *testing.T) {
	p := newPeer(t, func(_ int, id string) peerReply {
		// The ACK, then a frame nobody asked for.
		return peerReply{frames: [][]byte{ackMsg("AA", id, ""), ackMsg("AA", "UNASKED", "")}}
	})
	c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: p.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, id := range []string{"U1", "U2", "U3"} {
		if i == 1 && !c.Alive() {
			t.Fatal("Alive = false after an unsolicited frame, want the frame dropped and the connection kept")
		}
		ack, _, err := c.Send(context.Background(), hl7Msg(id, ""))
		if err != nil || ack.Code != hl7v2.ApplicationAccept || ack.ControlID != id {
			t.Fatalf("Send %s = %+v, %v; want its own AA", id, ack, err)
		}
	}
	if n := p.conns(); n != 1 {
		t.Errorf("peer saw %d connections, want 1", n)
	}
}

func TestClientAliveNoticesPeerClose(t *testing.T) {
	p := newPeer(t, func(_ int, id string) peerReply {
		return peerReply{frames: [][]byte{ackMsg("AA", id, "")}, hangup: true}
	})
	c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: p.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Alive() {
		t.Fatal("Alive = false on a fresh connection")
	}
	if _, _, err := c.Send(context.Background(), hl7Msg("H1", "")); err != nil {
		t.Fatal(err)
	}
	poll(t, "Alive to notice the peer's close", func() bool { return !c.Alive() })
	if _, _, err := c.Send(context.Background(), hl7Msg("H2", "")); err != mllp.ErrClosed {
		t.Errorf("Send after Alive found the connection dead = %v, want ErrClosed", err)
	}
}
