"""The smallest Geysir function: answers every function URL request with a greeting.

Deploy:  geysir deploy examples/hello --name hello --handler app.handler --url
"""


def handler(event, context):
    # `event` is the function URL's payload format 2.0 event; `context` is Lambda's context.
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain"},
        "body": "Hello from Geysir!\n",
    }
