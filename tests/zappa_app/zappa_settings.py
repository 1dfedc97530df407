# The settings module Zappa writes at the root of its zip (here for Geysir's tests: the fields
# our stand-in handler.py reads, with the values `zappa deploy` would write for the tests'
# Flask app). The tests write a Django-shaped variant (DJANGO_SETTINGS set) into other zips.
API_STAGE = "dev"
PROJECT_NAME = "tinyapp"
APP_MODULE = "app"
APP_FUNCTION = "app"
DJANGO_SETTINGS = None
EXCEPTION_HANDLER = None
DEBUG = True
LOG_LEVEL = "DEBUG"
BINARY_SUPPORT = True
CONTEXT_HEADER_MAPPINGS = {}
ENVIRONMENT_VARIABLES = {}
AWS_REGION = "us-east-1"
