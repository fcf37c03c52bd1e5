package search

import "slices"

func slicesSort(s []string)                    { slices.Sort(s) }
func slicesContains(s []string, v string) bool { return slices.Contains(s, v) }
