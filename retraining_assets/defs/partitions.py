"""The batch partitions: one dynamic partition per batch file, shared by every batch asset."""

import dagster as dg

#: Name of the dynamic partitions definition (``new_batch_sensor`` adds one per new file).
BATCH_PARTITIONS = "batches"
batch_partitions = dg.DynamicPartitionsDefinition(name=BATCH_PARTITIONS)
