<?php
// A redirect for the smoke tests: 301 to the URL in ?to=.
header('Location: ' . ($_GET['to'] ?? '/'), true, 301);
echo "moved\n";
