"""Image metrics (``metrics``), evaluation of fitted runs (``evaluate``) and run reports (``report``)."""
