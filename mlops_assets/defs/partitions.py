"""One dynamic partition per inference extract; the sensor adds them as files land."""

import dagster as dg

inference_batches = dg.DynamicPartitionsDefinition(name="inference_batches")
