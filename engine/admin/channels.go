package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/osprey-health/osprey/engine"
)

// channelList is the answer of GET /api/v1/channels.
type channelList struct {
	Channels []engine.ChannelStatus `json:"channels"`
}

// controlResult is the answer of POST /api/v1/channels/{name}/{action}.
type controlResult struct {
	Channel string              `json:"channel"`
	Action  string              `json:"action"`
	State   engine.ChannelState `json:"state,omitempty"` // as the engine reports it right after
}

// channels returns the engine's channels sorted by name, never nil, without touching the
// engine's slice.
func (s *Server) channels() []engine.ChannelStatus {
	cs := slices.Clone(s.eng.Channels())
	if cs == nil {
		cs = []engine.ChannelStatus{}
	}
	slices.SortFunc(cs, func(a, b engine.ChannelStatus) int { return strings.Compare(a.Name, b.Name) })
	for i := range cs {
		if cs[i].Destinations == nil {
			cs[i].Destinations = []engine.DestinationStatus{}
		}
	}
	return cs
}

func (s *Server) listChannels(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, channelList{Channels: s.channels()})
}

func (s *Server) getChannel(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	for _, ch := range s.channels() {
		if ch.Name == name {
			return c.JSON(http.StatusOK, ch)
		}
	}
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("channel %q not found", name), Err: engine.ErrUnknownChannel}
}

func (s *Server) controlChannel(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		name, err := pathParam(c, "name")
		if err != nil {
			return err
		}
		if err := s.eng.Control(c.Request().Context(), name, action); err != nil {
			return err
		}
		res := controlResult{Channel: name, Action: action}
		for _, ch := range s.eng.Channels() {
			if ch.Name == name {
				res.State = ch.State
			}
		}
		s.log.Info("admin: channel control", "channel", name, "action", action, "token", c.Get(principalKey))
		return c.JSON(http.StatusOK, res)
	}
}
