package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// discoveryQuiet is how long discovery keeps listening after the latest answer: instances
// answer a $SRV request independently, and there is no count to wait for.
const discoveryQuiet = 300 * time.Millisecond

// requiredMeta is the micro metadata every instance announces (docs/plugins.md, Discovery).
var requiredMeta = []string{
	protocol.MetaModelName, protocol.MetaModelVersion, protocol.MetaManufacturer, protocol.MetaDeviceUID,
	protocol.MetaModalities, protocol.MetaBodyParts, protocol.MetaProtocol,
}

// discover finds the plugin's instances by $SRV.INFO.<plugin> and checks what each announces,
// and that each answers PING and STATS on its own subjects. It returns false when no
// instance answered, since jobs would then only wait in the stream.
func (r *run) discover(ctx context.Context) bool {
	nc := r.b.Conn()
	subject, _ := micro.ControlSubject(micro.InfoVerb, r.opts.Plugin, "") // valid verb and name: no error
	raw, err := collect(ctx, nc, subject, r.opts.DiscoveryTimeout)
	if err != nil {
		r.rep.add("discovery", false, "%s: %v", subject, err)
		return false
	}
	var infos []micro.Info
	var bad []string
	for _, data := range raw {
		var in micro.Info
		if err := json.Unmarshal(data, &in); err != nil {
			bad = append(bad, fmt.Sprintf("an answer is not JSON: %v", err))
			continue
		}
		infos = append(infos, in)
	}
	if len(infos) == 0 {
		detail := fmt.Sprintf("no instance answered %s within %s: is the plugin running and connected to this NATS?", subject, r.opts.DiscoveryTimeout)
		if len(bad) > 0 {
			detail += "; " + strings.Join(bad, "; ")
		}
		r.rep.add("discovery", false, "%s", detail)
		return false
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].ID < infos[j].ID })
	var names []string
	for _, in := range infos {
		names = append(names, fmt.Sprintf("%s (%s)", in.ID, in.Version))
	}
	detail := fmt.Sprintf("%d instance(s): %s", len(infos), strings.Join(names, ", "))
	if len(bad) > 0 {
		detail += "; " + strings.Join(bad, "; ")
	}
	r.rep.add("discovery", len(bad) == 0, "%s", detail)

	r.versions = make(map[string]bool)
	var vName, vType, vVersion, vMeta, vProto, vVerbs []string
	for _, in := range infos {
		who := "instance " + in.ID
		if in.Name != r.opts.Plugin {
			vName = append(vName, fmt.Sprintf("%s: name %q, want %q", who, in.Name, r.opts.Plugin))
		}
		if in.Type != micro.InfoResponseType {
			vType = append(vType, fmt.Sprintf("%s: type %q, want %q", who, in.Type, micro.InfoResponseType))
		}
		if ValidSemver(in.Version) {
			r.versions[in.Version] = true
		} else {
			vVersion = append(vVersion, fmt.Sprintf("%s: version %q is not a semantic version (MAJOR.MINOR.PATCH)", who, in.Version))
		}
		for _, k := range requiredMeta {
			if _, ok := in.Metadata[k]; !ok {
				vMeta = append(vMeta, fmt.Sprintf("%s: metadata %q missing", who, k))
			}
		}
		if u := in.Metadata[protocol.MetaDeviceUID]; u != "" && !protocol.ValidUID(u) {
			vMeta = append(vMeta, fmt.Sprintf("%s: metadata %s %q is not a DICOM UID", who, protocol.MetaDeviceUID, u))
		}
		if p := in.Metadata[protocol.MetaProtocol]; p != protocol.Version {
			vProto = append(vProto, fmt.Sprintf("%s: metadata protocol %q, want %q", who, p, protocol.Version))
		}
		vVerbs = append(vVerbs, r.checkVerbs(ctx, in.ID)...)
	}
	r.rep.add("service name", len(vName)+len(vType) == 0, "%s", orOK(append(vName, vType...), "every instance answers as %q", r.opts.Plugin))
	r.rep.add("service version", len(vVersion) == 0, "%s", orOK(vVersion, "%s", strings.Join(sortedKeys(r.versions), ", ")))
	r.rep.add("service metadata", len(vMeta) == 0, "%s", orOK(vMeta, "%s present", strings.Join(requiredMeta, ", ")))
	r.rep.add("service protocol", len(vProto) == 0, "%s", orOK(vProto, "%s", protocol.Version))
	r.rep.add("service ping, stats", len(vVerbs) == 0, "%s", orOK(vVerbs, "every instance answers $SRV.PING and $SRV.STATS"))
	return true
}

// checkVerbs asks instance id PING and STATS on the subjects that name it.
func (r *run) checkVerbs(ctx context.Context, id string) []string {
	var vs []string
	for _, v := range []struct {
		verb micro.Verb
		typ  string
	}{{micro.PingVerb, micro.PingResponseType}, {micro.StatsVerb, micro.StatsResponseType}} {
		subject, _ := micro.ControlSubject(v.verb, r.opts.Plugin, id) // valid verb and name: no error
		rctx, cancel := context.WithTimeout(ctx, r.opts.DiscoveryTimeout)
		msg, err := r.b.Conn().RequestWithContext(rctx, subject, nil)
		cancel()
		if err != nil {
			vs = append(vs, fmt.Sprintf("instance %s: %s: %v", id, subject, err))
			continue
		}
		var got struct {
			Type string `json:"type"`
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(msg.Data, &got); err != nil {
			vs = append(vs, fmt.Sprintf("instance %s: %s: answer is not JSON: %v", id, subject, err))
			continue
		}
		if got.Type != v.typ || got.ID != id || got.Name != r.opts.Plugin {
			vs = append(vs, fmt.Sprintf("instance %s: %s: answered type %q id %q name %q, want %q, %q, %q",
				id, subject, got.Type, got.ID, got.Name, v.typ, id, r.opts.Plugin))
		}
	}
	return vs
}

// collect sends one request on subject and gathers every answer: it waits up to first for the
// first one, then until discoveryQuiet passes without another.
func collect(ctx context.Context, nc *nats.Conn, subject string, first time.Duration) ([][]byte, error) {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	var out [][]byte
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			// A request nobody subscribes to gets a 503 status message: no instance runs.
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return out, nil
			}
			out = append(out, m.Data)
			timer.Reset(discoveryQuiet)
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// orOK is the detail of a row: the violations, or the success text when there are none.
func orOK(violations []string, format string, args ...any) string {
	if len(violations) > 0 {
		return strings.Join(violations, "; ")
	}
	return fmt.Sprintf(format, args...)
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
