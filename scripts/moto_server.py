"""moto's server, with DynamoDB writes made atomic.

moto's threaded server checks a write's condition and then writes, with nothing to stop
another request's write from landing in between: two conditional writes on the same item can
both succeed, which DynamoDB never allows. runledger's correctness rests on that guarantee
(optimistic concurrency on each execution record), so its tests run moto with every DynamoDB
write serialized. Reads stay concurrent, and SQS long polls do not block anything.

Usage: python scripts/moto_server.py [moto_server arguments], e.g. -H 127.0.0.1 -p 5000.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
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
    if not hasattr(DynamoDBBackend, _name):
        sys.exit(f"moto_server.py: DynamoDBBackend.{_name} is gone; update this launcher")
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])
