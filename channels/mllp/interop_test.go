package mllp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
)

// These tests check the connector against an independent MLLP implementation: the
// python-hl7 package as Debian ships it (python3-hl7).

const python = "/usr/bin/python3"

// requirePythonHL7 skips the test when python3-hl7 is not installed, unless the environment
// says the services must be there (CI), in which case it fails.
func requirePythonHL7(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import hl7, hl7.client, hl7.mllp").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("python3-hl7 not available (%v: %s); install the Debian package python3-hl7", err, bytes.TrimSpace(out))
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// pythonClient sends each message given as an argument file with hl7.client.MLLPClient and
// prints one JSON line per ACK: MSA-1 and MSA-2 as python-hl7 parses them.
const pythonClient = `
import json, sys
import hl7
from hl7.client import MLLPClient

host, port = sys.argv[1], int(sys.argv[2])
with MLLPClient(host, port) as client:
    for path in sys.argv[3:]:
        with open(path, "rb") as f:
            raw = client.send_message(f.read())
        ack = hl7.parse(raw.strip(b"\x0b\x1c\r").decode("utf-8"))
        msa = ack.segment("MSA")
        print(json.dumps({"msa1": str(msa(1)), "msa2": str(msa(2))}), flush=True)
`

func TestInteropPythonClientToSource(t *testing.T) {
	requirePythonHL7(t)
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{}, sink)
	host, port, _ := net.SplitHostPort(addr)

	dir := t.TempDir()
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	ids := []string{"PY0001", "PY0002", "PY0003"}
	args := []string{script, host, port}
	for _, id := range ids {
		p := filepath.Join(dir, id+".hl7")
		if err := os.WriteFile(p, hl7Msg(id, ""), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python client: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("python client: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(ids) {
		t.Fatalf("python printed %d ACKs, want %d:\n%s", len(lines), len(ids), out)
	}
	for i, line := range lines {
		var got struct{ MSA1, MSA2 string }
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if got.MSA1 != "AA" || got.MSA2 != ids[i] {
			t.Errorf("python read MSA-1 %q MSA-2 %q, want AA %s", got.MSA1, got.MSA2, ids[i])
		}
	}
	msgs := sink.got()
	if len(msgs) != len(ids) {
		t.Fatalf("source got %d messages, want %d", len(msgs), len(ids))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Body, hl7Msg(ids[i], "")) {
			t.Errorf("message %d: got %q, want the bytes python sent", i, m.Body)
		}
	}
}

// pythonServer is an asyncio MLLP server built on hl7.mllp.start_hl7_server. It answers
// each message with hl7's own create_ack (AE when the control id starts with REJ) and
// appends every message it read, length-prefixed, to the file named by its argument.
const pythonServer = `
import asyncio, sys
import hl7
from hl7.mllp import start_hl7_server

out = open(sys.argv[1], "ab")

async def handle(reader, writer):
    try:
        while not writer.is_closing():
            block = await reader.readblock()
            out.write(len(block).to_bytes(4, "big") + block)
            out.flush()
            msg = hl7.parse(block.decode("utf-8"))
            code = "AE" if str(msg.segment("MSH")(10)).startswith("REJ") else "AA"
            writer.writemessage(msg.create_ack(ack_code=code))
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()

async def main():
    server = await start_hl7_server(handle, host="127.0.0.1", port=0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
`

func TestInteropDestinationToPythonServer(t *testing.T) {
	requirePythonHL7(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "server.py")
	if err := os.WriteFile(script, []byte(pythonServer), 0o600); err != nil {
		t.Fatal(err)
	}
	recvFile := filepath.Join(dir, "received.bin")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, recvFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()

	portLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		portLine <- strings.TrimSpace(line)
	}()
	var port string
	select {
	case port = <-portLine:
	case <-time.After(waitFor):
		t.Fatalf("python server did not start: %s", stderr.String())
	}
	if port == "" {
		t.Fatalf("python server printed no port: %s", stderr.String())
	}

	d := newDest(t, mllp.DestinationConfig{Address: "127.0.0.1:" + port})
	tests := []struct {
		id           string
		wantSummary  string
		wantRejected bool
	}{
		{"GO0001", "AA", false},
		{"GO0002", "AA", false},
		{"REJ0003", "AE", true},
		{"GO0004", "AA", false},
	}
	var sent [][]byte
	for _, tt := range tests {
		body := hl7Msg(tt.id, "")
		sent = append(sent, body)
		reply, err := d.Send(context.Background(), &engine.Message{Body: body})
		if errors.Is(err, engine.ErrRejected) != tt.wantRejected || (!tt.wantRejected && err != nil) {
			t.Errorf("%s: Send error %v, want rejected=%v", tt.id, err, tt.wantRejected)
		}
		if reply.Summary != tt.wantSummary || !strings.Contains(string(reply.Body), "MSA|"+tt.wantSummary+"|"+tt.id) {
			t.Errorf("%s: reply %q (%s), want %s for %s", tt.id, reply.Body, reply.Summary, tt.wantSummary, tt.id)
		}
	}

	raw, err := os.ReadFile(recvFile)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for len(raw) >= 4 {
		n := binary.BigEndian.Uint32(raw)
		if int(n) > len(raw)-4 {
			t.Fatalf("truncated record in %s", recvFile)
		}
		got = append(got, raw[4:4+n])
		raw = raw[4+n:]
	}
	if len(got) != len(sent) {
		t.Fatalf("python received %d messages, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("message %d: python received %q, want %q", i, got[i], sent[i])
		}
	}
}
