<?php
// A broken release: the home page fails.
http_response_code(500);
echo "database connection failed\n";
