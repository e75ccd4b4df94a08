"""The operations board.

python -m services.console    serve the board at http://HTTP_HOST:HTTP_PORT/ (settings from the
                              environment, see settings.ConsoleSettings); open it with `/#token=<token>`
"""

import sys

import uvicorn

from backbone.log import configure_logging
from services.console.app import create_app
from services.console.settings import ConsoleSettings


def main() -> None:
    if sys.argv[1:]:
        sys.exit(__doc__)
    settings = ConsoleSettings()
    configure_logging("console", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
