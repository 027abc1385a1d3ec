"""A third-party Uplink backend, as a team would write it in Python with grpcio from protos/fleetgate/v1/*.proto
alone: Hello -> Welcome, each batch acked by its range with a Credit{1}, each Gap acked by its range, each
Heartbeat answered with the same (with --heartbeats). Nothing is stored: the tests that start it are about the
connection. It runs on grpc-core, whose server polices HTTP/2 pings (grpc.http2.min_ping_interval_without_data_ms,
grpc.http2.max_ping_strikes), which grpc-js servers do not; that is why it exists.

The message classes come from a descriptor set (`buf build -o FILE` in protos/), so it needs Debian's
python3-grpcio (and python3-protobuf, which it depends on) and no protoc. Prints the port it listens on, then
serves until killed. Run with /usr/bin/python3.
"""
import argparse
import sys
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def message_classes(descriptor_file):
    files = descriptor_pb2.FileDescriptorSet.FromString(open(descriptor_file, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)

    def message(name):
        descriptor = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            return message_factory.GetMessageClass(descriptor)
        return message_factory.MessageFactory(pool).GetPrototype(descriptor)

    return message("fleetgate.v1.UplinkFrame"), message("fleetgate.v1.DownlinkFrame")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--descriptors", required=True)
    parser.add_argument("--min-ping-interval-ms", type=int, default=300000)
    parser.add_argument("--max-ping-strikes", type=int, default=2)
    parser.add_argument("--heartbeats", action="store_true", help="say answers_heartbeats in Welcome and answer them")
    args = parser.parse_args()
    UplinkFrame, DownlinkFrame = message_classes(args.descriptors)
    last_seq = {}
    streams = [0]

    def connect(frames, context):
        streams[0] += 1
        print(f"stream {streams[0]} opened by {context.peer()}", file=sys.stderr, flush=True)
        gateway = None
        for frame in frames:
            kind = frame.WhichOneof("frame")
            out = DownlinkFrame()
            if kind == "hello":
                gateway = frame.hello.gateway_id
                out.welcome.session_id = f"py-{streams[0]}"
                out.welcome.limits.max_batches_in_flight = 4
                out.welcome.last_committed_seq = last_seq.get(gateway, 0)
                out.welcome.answers_heartbeats = args.heartbeats
                yield out
            elif kind == "batch":
                records = frame.batch.records
                last_seq[gateway] = max(last_seq.get(gateway, 0), records[-1].seq)
                out.ack.from_seq = records[0].seq
                out.ack.through_seq = records[-1].seq
                yield out
                credit = DownlinkFrame()
                credit.credit.batches = 1
                yield credit
            elif kind == "gap":
                out.ack.from_seq = frame.gap.from_seq
                out.ack.through_seq = frame.gap.to_seq
                yield out
            elif kind == "heartbeat" and args.heartbeats:
                out.heartbeat.CopyFrom(frame.heartbeat)
                yield out
            # Device statuses and command results need no answer; unknown frames are ignored.

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[
            ("grpc.http2.min_ping_interval_without_data_ms", args.min_ping_interval_ms),
            ("grpc.http2.max_ping_strikes", args.max_ping_strikes),
        ],
    )
    handler = grpc.stream_stream_rpc_method_handler(
        connect, request_deserializer=UplinkFrame.FromString, response_serializer=DownlinkFrame.SerializeToString
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("fleetgate.v1.Uplink", {"Connect": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
