"""moto's server, with DynamoDB writes made atomic.

moto's threaded server checks a write's condition and then writes, with nothing to stop
another request's write from landing in between: two conditional writes on the same item can
both succeed, which DynamoDB never allows. runledger's correctness rests on that guarantee
(optimistic concurrency on each execution record), so its tests run moto with every DynamoDB
write serialized. The lock wraps the whole request handler, not only the backend's write: moto
reads the item it returns as ReturnValues=ALL_OLD before the backend writes, and a write racing
in between would make two writers see the same old item (both would think they made a change
only one of them made). Reads stay concurrent, and SQS long polls do not block anything.

A request may also ask to be answered only after a network's round trip (header
X-Emulated-Round-Trip-Ms, at most 1000): moto answers in well under a millisecond of network,
so without it a test of concurrent clients measures moto's own speed, not whether the clients
wait for each other as they would against AWS. The wait comes before any lock.

moto backs every transaction up by deep-copying each table it touches, stream included; its
stream records are plain JSON documents of whole items, so copying them made each transaction
slower than the last. They never change once made, so the copy shares them (a rolled-back
transaction still drops its own records: the restored copy has the list as it was).

moto answers a stream read (GetRecords) by serializing every record through the API's shape
model, attribute by attribute: a read of a dozen records of 40-step executions took a second,
which a test of live events would measure instead of runledger. Its records are kept in their
wire form already, so the read answers with them as they are.

A disabled event source mapping invokes nothing, as on AWS. moto invokes the function of a
table's stream mapping on every write, enabled or not, and then empties the stream; the
stack test disables the mappings and reads the stream itself, playing Lambda's poller.

Usage: python scripts/moto_server.py [moto_server arguments], e.g. -H 127.0.0.1 -p 5000.
"""

import copy
import datetime
import functools
import json
import sys
import threading
import time

from moto.dynamodb.models.table import StreamShard
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_WRITES = threading.RLock()
_WRITE_METHODS = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _serialized(method):
    @functools.wraps(method)
    def write(*args, **kwargs):
        with _WRITES:
            return method(*args, **kwargs)

    return write


for _name in _WRITE_METHODS:
    if not hasattr(DynamoHandler, _name):
        sys.exit(f"moto_server.py: DynamoHandler.{_name} is gone; update this launcher")
    setattr(DynamoHandler, _name, _serialized(getattr(DynamoHandler, _name)))

_dispatch = DomainDispatcherApplication.__call__


def _after_round_trip(self, environ, start_response):
    wait = environ.get("HTTP_X_EMULATED_ROUND_TRIP_MS", "")
    if wait.isdigit():
        time.sleep(min(int(wait), 1000) / 1000)
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _after_round_trip

def _copy_shard(self, memo):
    clone = StreamShard.__new__(StreamShard)
    memo[id(self)] = clone
    for name, value in self.__dict__.items():
        if name == "items":
            clone.items = list(value)  # the records themselves are never changed: shared
        else:
            setattr(clone, name, copy.deepcopy(value, memo))
    return clone


StreamShard.__deepcopy__ = _copy_shard

_add_record = StreamShard.add


def _add_invoking_enabled_mappings(self, old, new):
    mappings = self.table.lambda_event_source_mappings
    self.table.lambda_event_source_mappings = {
        arn: mapping for arn, mapping in mappings.items() if getattr(mapping, "enabled", True)
    }
    try:
        return _add_record(self, old, new)
    finally:
        self.table.lambda_event_source_mappings = mappings


StreamShard.add = _add_invoking_enabled_mappings


def _wire_value(value):
    # The only value of a stored record not in its wire form: when it was made (epoch seconds).
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).timestamp()
    raise TypeError(f"{type(value).__name__} in a stream record")


def _get_records_as_stored(self):
    limit = self._get_param("Limit")
    result = self.backend.get_records(self._get_param("ShardIterator"), limit or 1000)
    return json.dumps(result, default=_wire_value)


if not hasattr(DynamoDBStreamsHandler, "get_records"):
    sys.exit("moto_server.py: DynamoDBStreamsHandler.get_records is gone; update this launcher")
DynamoDBStreamsHandler.get_records = _get_records_as_stored

if __name__ == "__main__":
    main(sys.argv[1:])
