# syntax=docker/dockerfile:1
# chokepoint: a static binary on distroless, running as non-root.
#   docker build -t chokepoint .
#   docker run --rm -p 15010:15010 -v "$PWD/examples/httpbin-passthrough:/config:ro" chokepoint
# The admin server binds to loopback by default; to reach it from outside the
# container add: serve -f /config --admin-address 0.0.0.0:15014

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/chokepoint ./cmd/chokepoint

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/chokepoint /chokepoint
# The embedded example, so the image serves something out of the box; mount
# your own Istio YAML over /config.
COPY examples/httpbin-passthrough /config
USER 65532:65532
EXPOSE 15010 15014
ENTRYPOINT ["/chokepoint"]
CMD ["serve", "-f", "/config"]
